package keys

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckHome covers what the CLI and the server refuse as a key home,
// and what they accept, with real directories and symbolic links.
func TestCheckHome(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "data")
	if err := os.MkdirAll(filepath.Join(data, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	elsewhere := filepath.Join(root, "elsewhere")
	if err := os.MkdirAll(elsewhere, 0o700); err != nil {
		t.Fatal(err)
	}
	link := func(name, target string) string {
		t.Helper()
		p := filepath.Join(root, name)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	toSub := link("to-sub", filepath.Join(data, "sub"))                        // a link into the data directory
	dangling := link("dangling", filepath.Join(data, "not-yet"))               // a link into it whose target does not exist yet
	relLink := link("rel", "data/sub")                                         // a relative link into it
	dataLink := link("data-link", data)                                        // the data directory through a link
	outside := link("to-elsewhere", elsewhere)                                 // a link that leads out
	loop1, loop2 := filepath.Join(root, "loop1"), filepath.Join(root, "loop2") // a link cycle
	if err := os.Symlink(loop2, loop1); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(loop1, loop2); err != nil {
		t.Fatal(err)
	}

	inside := []struct{ name, home, data string }{
		{"home is the data directory", data, data},
		{"home is the data directory, with a trailing slash and dots", data + "/./", data},
		{"home nested inside", filepath.Join(data, "keys"), data},
		{"home nested deep, not existing yet", filepath.Join(data, "a", "b", "keys"), data},
		{"home is an existing subdirectory", filepath.Join(data, "sub"), data},
		{"home is a link into the data directory", toSub, data},
		{"home is below a link into the data directory", filepath.Join(toSub, "keys"), data},
		{"home is a dangling link into the data directory", dangling, data},
		{"home is below a dangling link into the data directory", filepath.Join(dangling, "keys"), data},
		{"home is a relative link into the data directory", relLink, data},
		{"data directory given through a link", filepath.Join(data, "keys"), dataLink},
		{"home through .. back into the data directory", filepath.Join(elsewhere, "..", "data", "keys"), data},
	}
	for _, tc := range inside {
		err := CheckHome(tc.home, tc.data)
		if !errors.Is(err, ErrHomeInsideData) {
			t.Errorf("%s: CheckHome(%s, %s) = %v, want ErrHomeInsideData", tc.name, tc.home, tc.data, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, tc.home) || !strings.Contains(msg, tc.data) {
			t.Errorf("%s: the message %q does not name both directories", tc.name, msg)
		}
	}

	outsideCases := []struct{ name, home, data string }{
		{"sibling with the data directory's name as a prefix", root + "/data2", data},
		{"sibling named like a parent reference", filepath.Join(root, "..data"), data},
		{"the data directory's parent", root, data},
		{"an unrelated directory", elsewhere, data},
		{"a link that leads out of the data directory's tree", outside, data},
		{"below a link that leads out", filepath.Join(outside, "keys"), data},
		{"a link cycle", loop1, data},
		{"no data directory (a database store)", filepath.Join(data, "keys"), ""},
		{"no home", "", data},
	}
	for _, tc := range outsideCases {
		if err := CheckHome(tc.home, tc.data); err != nil {
			t.Errorf("%s: CheckHome(%s, %s) = %v, want nil", tc.name, tc.home, tc.data, err)
		}
	}

	// Relative paths are relative to the working directory.
	t.Chdir(root)
	for _, tc := range []struct {
		home, data string
		inside     bool
	}{
		{"data/keys", "data", true},
		{"data/keys", data, true},
		{filepath.Join(data, "keys"), "data", true},
		{"./data/../data/sub", "./data", true},
		{"to-sub/keys", "data", true},
		{"data", "data", true},
		{"data2", "data", false},
		{"elsewhere/keys", "data", false},
		{"keys", "data", false},
		{"..", "data", false},
	} {
		err := CheckHome(tc.home, tc.data)
		if got := errors.Is(err, ErrHomeInsideData); got != tc.inside {
			t.Errorf("in %s: CheckHome(%q, %q) = %v, want inside=%v", root, tc.home, tc.data, err, tc.inside)
		}
	}
}
