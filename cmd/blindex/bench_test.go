package main

import (
	"strings"
	"testing"
)

// TestBenchUsage: the bench command's flags are checked before anything
// runs, with an error that names the flag.
func TestBenchUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "--sizes", "1000,x"}, `--sizes: "x" is not a positive number`},
		{[]string{"bench", "--sizes", "0"}, `--sizes: "0" is not a positive number`},
		{[]string{"bench", "--server-large", "40702,-3"}, `--server-large: "-3" is not a positive number`},
		{[]string{"bench", "--skip", "main,bogus", "--corpus-dir", t.TempDir()}, `skip "bogus": not a phase`},
		{[]string{"bench", "--load-rate", "-5", "--corpus-dir", t.TempDir()}, "load rate -5"},
		{[]string{"bench", "--server-small", "10", "--server-max-open", "64", "--corpus-dir", t.TempDir()}, "cannot evict anything"},
		{[]string{"bench", "stray"}, `unexpected argument "stray"`},
	} {
		r := must(t, exitUsage, tc.args...)
		if !strings.Contains(r.stderr, tc.want) {
			t.Errorf("blindex %s: stderr does not say %q:\n%s", strings.Join(tc.args, " "), tc.want, r.stderr)
		}
	}
}
