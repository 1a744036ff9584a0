// The module's layout rules, as a test: which of its packages may import
// which. The arrows are README's "Architecture":
//
//	cmd/blindex → server, bench → query → view ← index → store, keys, internal
//	server, cmd/blindex → tenancy → index → attach → internal
//
// query reads an instance only through the view (it never sees the store,
// the keys or the sealing code); the engine (index) knows nothing of the
// query engine, the server, the bench or the CLI; the store knows nothing
// of what it stores; attach (what an attachment is: its records, ids and
// text extraction) knows nothing of the engine that stores it; tenancy (the
// catalog: BYOK configurations, plans, keyrings, explicit locks) uses the
// engine's exported API and the engine knows nothing of it. The rules
// are on non-test files: tests may cross the arrows (index's tests search
// through query).
package blindex_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/blindex/blindex"

// forbidden maps a package (and its subpackages) to the packages (and their
// subpackages) it must not import, directly or through other packages of
// the module.
var forbidden = map[string][]string{
	"query":   {"store", "keys", "internal", "index", "server", "bench", "cmd", "client"},
	"view":    {"store", "keys", "internal", "index", "query", "server", "bench", "cmd", "client"},
	"index":   {"tenancy", "query", "server", "bench", "cmd", "client"},
	"tenancy": {"query", "server", "bench", "cmd", "client"},
	"attach":  {"index", "tenancy", "store", "keys", "tokenize", "query", "view", "server", "bench", "cmd", "client"},
	"store":   {"index", "tokenize", "query", "view", "server", "bench", "cmd", "client"},
}

// clashes are module packages whose name is also a bleve package's: a file
// importing both would need an alias to tell them apart.
var clashes = map[string]string{
	"index": "github.com/blevesearch/bleve_index_api",
	"query": "github.com/blevesearch/bleve/v2/search/query",
}

// imports returns the module's packages (as paths relative to the module,
// "." for the root) with their non-test imports, and for each non-test
// file its imports.
func imports(t *testing.T) (pkgs map[string][]string, files map[string][]string) {
	pkgs, files = map[string][]string{}, map[string][]string{}
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != "." && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		dir := filepath.ToSlash(filepath.Dir(p))
		if _, ok := pkgs[dir]; !ok {
			pkgs[dir] = nil
		}
		for _, imp := range f.Imports {
			ip, _ := strconv.Unquote(imp.Path.Value)
			files[p] = append(files[p], ip)
			if rel, ok := strings.CutPrefix(ip, module+"/"); ok && !slices.Contains(pkgs[dir], rel) {
				pkgs[dir] = append(pkgs[dir], rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) < 10 {
		t.Fatalf("found only %d packages", len(pkgs))
	}
	return pkgs, files
}

// under says whether package p is dir or one of its subpackages.
func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// TestImportArrows fails when a package imports, directly or through other
// packages of the module, a package the layout forbids it.
func TestImportArrows(t *testing.T) {
	pkgs, _ := imports(t)
	checked := 0
	for from, banned := range forbidden {
		for p := range pkgs {
			if !under(p, from) {
				continue
			}
			checked++
			// Walk p's module imports breadth first, keeping the path.
			via := map[string]string{p: ""}
			queue := []string{p}
			for len(queue) > 0 {
				q := queue[0]
				queue = queue[1:]
				for _, imp := range pkgs[q] {
					if _, seen := via[imp]; seen {
						continue
					}
					via[imp] = q
					queue = append(queue, imp)
					for _, b := range banned {
						if under(imp, b) {
							chain := []string{imp}
							for x := q; x != ""; x = via[x] {
								chain = append([]string{x}, chain...)
							}
							t.Errorf("%s must not import %s: %s", p, b, strings.Join(chain, " → "))
						}
					}
				}
			}
		}
	}
	if checked < len(forbidden) {
		t.Fatalf("checked %d packages, fewer than the rules' %d", checked, len(forbidden))
	}
}

// TestNoNameClash fails when a file imports one of the module's packages
// and bleve's package of the same name.
func TestNoNameClash(t *testing.T) {
	_, files := imports(t)
	for f, imps := range files {
		for ours, theirs := range clashes {
			if slices.Contains(imps, module+"/"+ours) && slices.Contains(imps, theirs) {
				t.Errorf("%s imports both %s and %s (%s): one of them needs an alias", f, path.Join(module, ours), theirs, path.Base(ours))
			}
		}
	}
}

// TestEngineWithoutBleveIndexes: the engine (index) and the view do not
// depend on bleve's root package, nor so on its scorch index or the zap
// segment formats; only the query engine runs bleve's search.
func TestEngineWithoutBleveIndexes(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./index", "./view").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, module+"/index") {
		t.Fatalf("go list did not list the engine: %v", deps)
	}
	for _, d := range deps {
		if d == "github.com/blevesearch/bleve/v2" || strings.Contains(d, "/index/scorch") || strings.HasPrefix(d, "github.com/blevesearch/zapx/") {
			t.Errorf("the engine depends on %s", d)
		}
	}
}
