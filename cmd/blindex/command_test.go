package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// storeCommands is every command that works on a store, with arguments
// that pass its own checks, so that what follows is the shared preamble
// (storeCmd): the common flags, then opening the store.
var storeCommands = [][]string{
	{"demo"},
	{"index", "testdata/docs.ndjson"},
	{"search", "crash"},
	{"get", "T-1"},
	{"delete", "T-1"},
	{"check"},
	{"instances"},
	{"adopt"},
	{"config", "create", "--org", "o", "--kms-key-arn", "arn:aws:kms:eu-west-1:111122223333:key/k", "--region", "eu-west-1"},
	{"config", "show", "--org", "o"},
	{"config", "ls"},
	{"org", "set", "--org", "o", "--plan", "enterprise"},
	{"org", "show", "--org", "o"},
	{"org", "ls"},
	{"instance", "create"},
	{"instance", "show"},
	{"instance", "ls"},
	{"instance", "enable-byok"},
	{"instance", "revoke-now"},
	{"instance", "restore"},
	{"instance", "rotate"},
	{"instance", "reencrypt"},
	{"instance", "delete", "--yes"},
	{"attach", "add", "--doc", "T-1", "testdata/docs.ndjson"},
	{"attach", "get", "--doc", "T-1", "a1"},
	{"attach", "ls", "--doc", "T-1"},
	{"attach", "rm", "--doc", "T-1", "a1"},
}

// TestStoreCommandsSharePreamble checks what every store command does the
// same way: it takes the common flags, refuses a key home inside the data
// directory before creating anything (commands that create a store
// included), validates the common flags, and refuses a data directory that
// does not exist unless it creates one.
func TestStoreCommandsSharePreamble(t *testing.T) {
	t.Setenv("BLINDEX_HOME", t.TempDir())
	creates := map[string]bool{"demo": true, "index": true, "config create": true, "org set": true, "instance create": true}
	for _, args := range storeCommands {
		name := commandName(args)
		t.Run(name, func(t *testing.T) {
			r := blindex(t, "", append(args, "-h")...)
			for _, flag := range []string{"-data", "-store", "-home", "-lease", "-audit", "-kms-endpoint", "-kms-timeout", "-policy", "-min-free-mb"} {
				if r.code != 0 || !strings.Contains(r.stderr, "  "+flag+" ") {
					t.Errorf("blindex %s -h: no common flag %s (exit %d)", name, flag, r.code)
				}
			}

			data := filepath.Join(t.TempDir(), "data")
			r = blindex(t, "", append(args, "--data", data, "--home", filepath.Join(data, "keys"))...)
			if r.code != exitUsage || !strings.Contains(r.stderr, "blindex "+name+": keys: the key home") || !strings.Contains(r.stderr, "inside the data directory") {
				t.Errorf("home inside the data directory: want exit 1 naming the key home, got %v", r)
			}
			if _, err := os.Stat(data); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("home inside the data directory: the data directory was created (stat: %v)", err)
			}

			for _, bad := range []struct {
				flags []string
				want  string
			}{
				{[]string{"--data", data, "--store", "postgres://localhost/x"}, "give --data DIR or --store URL, not both"},
				{[]string{"--store", "mysql://localhost/x"}, "--store takes a postgres:// or postgresql:// URL"},
				{[]string{"--data", data, "--lease", "10ms"}, "--lease must be at least"},
				{[]string{"--data", data, "--min-free-mb", "-1"}, "--min-free-mb must not be negative"},
			} {
				r := blindex(t, "", append(args, bad.flags...)...)
				if r.code != exitUsage || !strings.Contains(r.stderr, bad.want) || !strings.Contains(r.stderr, "run 'blindex "+name+" -h'") {
					t.Errorf("%q: want exit 1 and %q, got %v", bad.flags, bad.want, r)
				}
			}

			missing := filepath.Join(t.TempDir(), "missing")
			r = blindex(t, "", append(args, "--data", missing)...)
			_, err := os.Stat(missing)
			switch {
			case creates[name] && err != nil:
				t.Errorf("a missing data directory was not created: %v (%v)", err, r)
			case !creates[name] && (r.code != exitUsage || !strings.Contains(r.stderr, "does not exist")):
				t.Errorf("a missing data directory: want exit 1 and \"does not exist\", got %v", r)
			case !creates[name] && err == nil:
				t.Error("a command that does not create a store created the data directory")
			}
		})
	}
}

// commandName is the command of args as messages name it: "search",
// "instance show".
func commandName(args []string) string {
	switch args[0] {
	case "config", "instance", "org", "attach":
		return args[0] + " " + args[1]
	}
	return args[0]
}
