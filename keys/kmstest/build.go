package kmstest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// module is the local-kms module path; its version comes from go.mod.
const module = "github.com/nsmithuk/local-kms"

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary returns the path of a local-kms binary: $BLINDEX_LOCAL_KMS if set,
// else one built once per cache (see the package documentation). It fails t
// if there is none.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() { buildPath, buildErr = binary() })
	if buildErr != nil {
		t.Fatalf("kmstest: %v", buildErr)
	}
	return buildPath
}

func binary() (string, error) {
	if p := os.Getenv("BLINDEX_LOCAL_KMS"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("BLINDEX_LOCAL_KMS: %w", err)
		}
		return p, nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := exec.Command(goBin, "list", "-m", "-f", "{{.Version}}", module).Output()
	if err != nil {
		return "", fmt.Errorf("finding the %s version in go.mod (run the tests inside the blindex module): %w%s", module, err, stderr(err))
	}
	version := strings.TrimSpace(string(out))
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "blindex", "kmstest")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		// A read-only home: fall back to the temporary directory.
		dir = filepath.Join(os.TempDir(), "blindex-kmstest")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", err
		}
	}
	name := fmt.Sprintf("local-kms-%s-%s-%s-%s", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	path := filepath.Join(dir, name)
	if isExecutable(path) {
		return path, nil
	}

	// Serialize builds across test binaries running at the same time.
	unlock, err := lockFile(filepath.Join(dir, "build.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if isExecutable(path) {
		return path, nil // another process built it while we waited
	}
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command(goBin, "build", "-o", filepath.Join(tmp, "local-kms"), module)
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s: %w: %s", module, err, errBuf.String())
	}
	if err := os.Rename(filepath.Join(tmp, "local-kms"), path); err != nil {
		return "", err
	}
	return path, nil
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

func stderr(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return ": " + string(bytes.TrimSpace(ee.Stderr))
	}
	return ""
}
