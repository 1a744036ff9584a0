package keys

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The key home is the directory that holds the local provider key
// ([LocalKeyFile]) and the instances' shredding secrets. It MUST NOT be the
// data directory or inside it: a copy of the data directory would then
// carry the key that protects it. The CLI and the server both enforce this
// with [CheckHome].

// ErrHomeInsideData reports a key home that is the data directory or lies
// inside it (symbolic links followed).
var ErrHomeInsideData = errors.New("keys: the key home is inside the data directory")

// DefaultHome returns the key home used when none is given: $BLINDEX_HOME,
// else ~/.blindex. It is not made absolute and not created.
func DefaultHome() (string, error) {
	if h := os.Getenv("BLINDEX_HOME"); h != "" {
		return h, nil
	}
	u, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("keys: no home directory to put the key home in; set BLINDEX_HOME: %w", err)
	}
	return filepath.Join(u, ".blindex"), nil
}

// CheckHome returns an error matching [ErrHomeInsideData] when the key home
// is the data directory or lies inside it. Both paths may be relative (to
// the working directory) and need not exist yet: symbolic links are
// resolved as far as each path exists, dangling links included, so that a
// home reached through a link into the data directory, or a data directory
// reached through a link around the home, is refused. A home beside the
// data directory whose name merely starts with it (/srv/data2 for
// /srv/data) is accepted. An empty data (a store in a database) or an
// empty home is never refused.
func CheckHome(home, data string) error {
	if home == "" || data == "" {
		return nil
	}
	rel, err := filepath.Rel(resolvePath(data), resolvePath(home))
	if err != nil {
		return nil // not comparable (e.g. another volume): not inside
	}
	if rel == "." || (rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))) {
		return &homeInsideError{home: home, data: data}
	}
	return nil
}

type homeInsideError struct{ home, data string }

func (e *homeInsideError) Error() string {
	return fmt.Sprintf("keys: the key home %s is inside the data directory %s; keep keys away from the data they protect", e.home, e.data)
}

func (e *homeInsideError) Is(target error) bool { return target == ErrHomeInsideData }

// maxLinks bounds the symbolic links resolvePath follows (as the kernel's
// ELOOP limit does), so that a link cycle ends.
const maxLinks = 40

// resolvePath returns p made absolute and clean, with symbolic links
// resolved as far as the path exists. Of the part that does not exist, a
// leading dangling link is still followed to its target.
func resolvePath(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return filepath.Clean(p)
	}
	p = abs
	for links := 0; links < maxLinks; links++ {
		// Find the longest prefix that resolves; rest is what follows it.
		cur, rest := p, ""
		for {
			if r, err := filepath.EvalSymlinks(cur); err == nil {
				return filepath.Join(r, rest)
			}
			// A dangling link: follow it by hand and start again.
			if fi, err := os.Lstat(cur); err == nil && fi.Mode()&os.ModeSymlink != 0 {
				if target, err := os.Readlink(cur); err == nil {
					if !filepath.IsAbs(target) {
						// Relative to the link's directory, which exists:
						// resolve it first so that ".." in target is right.
						dir := filepath.Dir(cur)
						if r, err := filepath.EvalSymlinks(dir); err == nil {
							dir = r
						}
						target = filepath.Join(dir, target)
					}
					p = filepath.Join(target, rest)
					break
				}
			}
			parent := filepath.Dir(cur)
			if parent == cur {
				return p
			}
			rest = filepath.Join(filepath.Base(cur), rest)
			cur = parent
		}
	}
	return p
}
