package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/blevesearch/bleve/v2"
)

// bleveSuiteDir returns the test/tests directory of the bleve module this
// module builds with, from the module cache.
func bleveSuiteDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/blevesearch/bleve/v2").Output()
	if err != nil {
		t.Fatalf("go list -m github.com/blevesearch/bleve/v2: %v", err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		// Listed in go.mod but not yet downloaded.
		if out, err := exec.Command("go", "mod", "download", "-json", "github.com/blevesearch/bleve/v2").Output(); err == nil {
			var m struct{ Dir string }
			if json.Unmarshal(out, &m) == nil {
				dir = m.Dir
			}
		}
	}
	if dir == "" {
		t.Fatal("the bleve module is not in the module cache (go mod download github.com/blevesearch/bleve/v2)")
	}
	tests := filepath.Join(dir, "test", "tests")
	if _, err := os.Stat(tests); err != nil {
		t.Fatalf("bleve's integration suite: %v", err)
	}
	return tests
}

// bleveSuiteCase is one entry of a searches.json, as bleve's test.SearchTest.
type bleveSuiteCase struct {
	Search  json.RawMessage     `json:"search"`
	Result  *bleve.SearchResult `json:"result"`
	Comment string              `json:"comment"`
}

// bleveSuiteCases is how many cases bleve v2.6.3's suite has; fewer means
// the suite did not load.
const bleveSuiteCases = 136

// TestBleveSuite runs bleve's own integration suite (test/tests of the
// bleve module) through the server's HTTP API: one instance per dataset,
// named after it, created with the dataset's mapping; the documents are
// indexed in file-name order with the file name (less its extension) as
// id; each search request is sent as is and its answer checked as bleve's
// test/integration_test.go checks it: total, hit ids in order, fields,
// fragments and locations where the expectation has them, finite scores,
// facets, and the index name on every hit. A dataset of several indexes
// (datasets/) is searched through an alias (POST /v1/search) over one
// instance per index. Every case that fails fails the test, as a subtest
// named dataset/number.
func TestBleveSuite(t *testing.T) {
	dir := bleveSuiteDir(t)
	ts := startServer(t, Config{Instance: testInstanceOptions})
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var passed, total int
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		name := e.Name()
		t.Run(name, func(t *testing.T) {
			cases, search, alias, loadErr := loadBleveDataset(t, ts, filepath.Join(dir, name), name)
			indexName := name
			if alias {
				indexName = "" // bleve checks the name on single indexes only
			}
			for i, c := range cases {
				id := fmt.Sprintf("%s/%d", name, i)
				total++
				var problems []string
				if loadErr != nil {
					problems = []string{"loading the dataset: " + loadErr.Error()}
				} else {
					problems = checkBleveCase(c, search(c.Search), indexName)
				}
				t.Run(fmt.Sprint(i), func(t *testing.T) {
					for _, p := range problems {
						t.Errorf("%s (%s): %s", id, c.Comment, p)
					}
				})
				if len(problems) == 0 {
					passed++
				}
			}
		})
	}
	t.Logf("bleve's integration suite through the server: %d of %d cases pass", passed, total)
	if total < bleveSuiteCases {
		t.Errorf("only %d cases found in %s, want %d: the suite did not load", total, dir, bleveSuiteCases)
	}
}

// loadBleveDataset creates the dataset's instance(s), indexes its
// documents and returns its searches, a function running one of them,
// whether it searches an alias, and why the server refused the dataset.
func loadBleveDataset(t *testing.T, ts *testServer, dir, name string) ([]bleveSuiteCase, func(json.RawMessage) response, bool, error) {
	t.Helper()
	mapping, err := os.ReadFile(filepath.Join(dir, "mapping.json"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "searches.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []bleveSuiteCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatalf("searches.json: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		tok, err := createBleveInstance(t, ts, name, mapping, filepath.Join(dir, "data"))
		if err != nil {
			return cases, nil, false, err
		}
		return cases, func(req json.RawMessage) response {
			return ts.do("POST", "/v1/instances/"+name+"/search", tok, []byte(req))
		}, false, nil
	}
	sets, err := os.ReadDir(filepath.Join(dir, "datasets"))
	if err != nil {
		t.Fatal(err)
	}
	var members []string
	for _, s := range sets {
		if _, err := createBleveInstance(t, ts, s.Name(), mapping, filepath.Join(dir, "datasets", s.Name())); err != nil {
			return cases, nil, true, err
		}
		members = append(members, s.Name())
	}
	return cases, func(req json.RawMessage) response {
		body, err := json.Marshal(map[string]any{"instances": members, "request": req})
		if err != nil {
			t.Fatal(err)
		}
		return ts.do("POST", "/v1/search", testAdminToken, body)
	}, true, nil
}

// createBleveInstance creates an instance with the mapping and indexes the
// documents of dataDir in file-name order, as bleve's loadDataSet does. It
// returns a read token, or an error when the server refuses the mapping or
// a document.
func createBleveInstance(t *testing.T, ts *testServer, name string, mapping []byte, dataDir string) (string, error) {
	t.Helper()
	r := ts.do("POST", "/v1/instances", testAdminToken, map[string]any{"name": name, "org": "bleve-suite", "mapping": json.RawMessage(mapping)})
	if r.status != http.StatusCreated {
		return "", fmt.Errorf("creating instance %s: %s", name, r)
	}
	files, err := os.ReadDir(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	var docs [][]byte
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dataDir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		var c bytes.Buffer
		if err := json.Compact(&c, b); err != nil {
			t.Fatalf("%s: %v", f.Name(), err)
		}
		ids = append(ids, strings.TrimSuffix(f.Name(), filepath.Ext(f.Name())))
		docs = append(docs, c.Bytes())
	}
	write := ts.token(name, ScopeWrite)
	r = ts.do("POST", "/v1/instances/"+name+"/bulk", write, bulkBody(ids, docs))
	var br struct {
		Errors bool `json:"errors"`
	}
	if r.status != http.StatusOK || json.Unmarshal(r.body, &br) != nil || br.Errors {
		return "", fmt.Errorf("indexing into %s: %s", name, r)
	}
	return ts.token(name, ScopeRead), nil
}

// checkBleveCase checks an answer as bleve's test/integration_test.go
// does and returns what differs.
func checkBleveCase(c bleveSuiteCase, r response, index string) []string {
	if r.status != http.StatusOK {
		return []string{"search failed: " + r.String()}
	}
	var res bleve.SearchResult
	if err := json.Unmarshal(r.body, &res); err != nil {
		return []string{fmt.Sprintf("answer is not a search result: %v", err)}
	}
	want := c.Result
	var p []string
	if res.Total != want.Total {
		return []string{fmt.Sprintf("expected total %d, got %d", want.Total, res.Total)}
	}
	if len(res.Hits) != len(want.Hits) {
		return []string{fmt.Sprintf("expected %d hits, got %d: %v", len(want.Hits), len(res.Hits), res.Hits)}
	}
	for i, hit := range want.Hits {
		got := res.Hits[i]
		if hit.ID != got.ID {
			p = append(p, fmt.Sprintf("expected hit %d to have id %s, got %s", i, hit.ID, got.ID))
		}
		if hit.Fields != nil && !reflect.DeepEqual(hit.Fields, got.Fields) {
			p = append(p, fmt.Sprintf("expected hit %d to have fields %#v, got %#v", i, hit.Fields, got.Fields))
		}
		if hit.Fragments != nil && !reflect.DeepEqual(hit.Fragments, got.Fragments) {
			p = append(p, fmt.Sprintf("expected hit %d to have fragments %#v, got %#v", i, hit.Fragments, got.Fragments))
		}
		if hit.Locations != nil && !reflect.DeepEqual(hit.Locations, got.Locations) {
			p = append(p, fmt.Sprintf("expected hit %d to have locations %#v, got %#v", i, hit.Locations, got.Locations))
		}
		if math.IsInf(got.Score, 0) || math.IsNaN(got.Score) {
			p = append(p, fmt.Sprintf("hit %d has an invalid score %f", i, got.Score))
		}
	}
	if want.Facets != nil && !reflect.DeepEqual(want.Facets, res.Facets) {
		p = append(p, fmt.Sprintf("expected facets %#v, got %#v", want.Facets, res.Facets))
	}
	if index != "" {
		for _, h := range res.Hits {
			if h.Index != index {
				p = append(p, fmt.Sprintf("expected index name %q on every hit, got %q", index, h.Index))
				break
			}
		}
	}
	return p
}
