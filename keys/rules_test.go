package keys

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestLibraryRules enforces, for every non-test file of keys and its
// subpackages: no printing (fmt.Print*, print, println), no log package
// (library code reports through errors and the optional slog.Logger), and
// no math/rand (randomness, jitter included, comes from crypto/rand).
func TestLibraryRules(t *testing.T) {
	forbiddenImports := map[string]string{
		"log":          "library code must not log through the log package",
		"math/rand":    "use crypto/rand",
		"math/rand/v2": "use crypto/rand",
	}
	files := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != "." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		files++
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if why, bad := forbiddenImports[p]; bad {
				t.Errorf("%s imports %s: %s", path, p, why)
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			switch fn := call.Fun.(type) {
			case *ast.Ident:
				if fn.Name == "print" || fn.Name == "println" {
					t.Errorf("%s calls %s", path, fn.Name)
				}
			case *ast.SelectorExpr:
				if x, ok := fn.X.(*ast.Ident); ok && x.Name == "fmt" && strings.HasPrefix(fn.Sel.Name, "Print") {
					t.Errorf("%s calls fmt.%s", path, fn.Sel.Name)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 8 {
		t.Fatalf("checked only %d files", files)
	}
}
