package index

// This file is long on purpose: one differential harness against bleve's
// scorch (generated corpus, request generator, hit and score comparison)
// and the cases that drive it; split, the cases lose sight of the harness.

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/index/scorch"
	"github.com/blevesearch/bleve/v2/search"
	"github.com/blevesearch/bleve/v2/search/query"
	bindex "github.com/blevesearch/bleve_index_api"

	"github.com/blindex/blindex/tokenize"
)

// Differential tests: the same mapping, documents (batches, updates and
// deletes) and queries through blindex and through plaintext bleve (scorch,
// BM25). Two bleve indexes are kept:
//
//   - "incremental" receives exactly the batches blindex receives. Its BM25
//     statistics depend on how scorch happens to segment and merge (the
//     average field length counts dictionary entries per segment), so it is
//     compared on which documents match: total hits and the full set of ids.
//   - "fresh" is rebuilt at each comparison round from the live documents in
//     one batch, so it is one segment. The generator keeps every term of a
//     document that is later updated or deleted alive in documents that stay
//     (see diffGen), so blindex's dictionary and the fresh segment's have the
//     same cardinality, bleve's BM25 statistics agree, and hits are compared
//     in order, up to score ties, with scores equal within 1e-6 relative.
//
// The seed is printed; BLINDEX_DIFF_SEED=n replays one.

const diffMapping = `{
 "default_analyzer": "en",
 "default_datetime_parser": "gen",
 "default_field": "_all",
 "scoring_model": "bm25",
 "default_mapping": {
  "enabled": true,
  "dynamic": false,
  "properties": {
   "project": {"fields": [{"name": "project", "type": "text", "analyzer": "keyword", "index": true, "docvalues": true, "include_in_all": false}]},
   "status": {"fields": [{"name": "status", "type": "text", "analyzer": "keyword", "index": true, "docvalues": true, "include_term_vectors": true, "include_in_all": false}]},
   "labels": {"fields": [{"name": "labels", "type": "text", "analyzer": "keyword", "index": true, "docvalues": true, "include_in_all": false}]},
   "title": {"fields": [{"name": "title", "type": "text", "analyzer": "en", "index": true, "store": true, "include_term_vectors": true, "include_in_all": true}]},
   "body": {"fields": [{"name": "body", "type": "text", "analyzer": "en", "index": true, "include_term_vectors": false, "include_in_all": true}]},
   "votes": {"fields": [{"name": "votes", "type": "number", "index": true, "docvalues": true}]},
   "created": {"fields": [{"name": "created", "type": "datetime", "index": true, "docvalues": true, "include_in_all": false}]},
   "comments": {
    "enabled": true,
    "dynamic": false,
    "properties": {
     "author": {"fields": [{"name": "author", "type": "text", "analyzer": "keyword", "index": true, "include_in_all": false}]},
     "body": {"fields": [{"name": "body", "type": "text", "analyzer": "en", "index": true, "include_term_vectors": true, "include_in_all": true}]}
    }
   }
  }
 },
 "analysis": {
  "date_time_parsers": {
   "gen": {"type": "flexiblego", "layouts": ["2006-01-02T15:04:05Z07:00", "2006-01-02"]}
  }
 }
}`

// Vocabulary. Frequent words (and the numbers among them) are what
// "volatile" documents (those later updated or deleted) are made of; rare
// words appear only in documents that stay, so deleting never leaves a term
// without a live document.
var (
	diffFrequent = []string{"connection", "server", "timeout", "error", "cluster", "node", "restart",
		"memory", "disk", "query", "client", "request", "thread", "failure", "update", "network",
		"process", "block", "file", "write", "read", "config", "leader", "queue", "reset", "peer",
		"full", "slow", "test", "build", "7", "8080"}
	diffStop = []string{"the", "a", "of", "to", "is", "and", "in", "on", "for", "with", "by", "it", "was"}
	diffRare = []string{"zookeeper", "kerberos", "replication", "replica", "replicate", "scheduler",
		"schedule", "manager", "datanode", "namenode", "shuffle", "metastore", "compaction", "abc",
		"arc", "aec", "ticket", "token", "balancer", "snapshot", "checksum", "heartbeat", "quorum",
		"partition", "offset", "broker", "consumer", "producer", "ledger", "journal", "serializer",
		"deadlock", "overflow", "segfault", "repository", "replay", "manifest", "manage", "managers",
		"memorial", "servers", "timeouts", "conection", "disks", "42", "3.14"}
	diffPhrases = []string{"connection reset by peer", "connection to server", "disk full",
		"connection of the server", "memory leak in the client", "reset connection"}
	diffProjects = []string{"HDFS", "YARN", "HIVE", "KAFKA", "SPARK"}
	diffStatuses = []string{"Open", "Resolved", "Closed", "In Progress"}
	diffLabels   = []string{"patch", "newbie", "perf", "security", "regression"}
	diffAuthors  = []string{"alice", "bob", "carol", "dave"}
)

// diffDates is the pool of dates every volatile document draws from; stable
// documents cover all of it first.
var diffDates = func() []string {
	var out []string
	r := mrand.New(mrand.NewPCG(5, 5))
	for i := 0; i < 24; i++ {
		y, m, d := 2014+r.IntN(4), 1+r.IntN(12), 1+r.IntN(28)
		if i%4 == 3 {
			out = append(out, fmt.Sprintf("%04d-%02d-%02d", y, m, d))
		} else {
			out = append(out, fmt.Sprintf("%04d-%02d-%02dT%02d:%02d:%02dZ", y, m, d, r.IntN(24), r.IntN(60), r.IntN(60)))
		}
	}
	return out
}()

type genDoc struct {
	id   string
	body []byte
}

// diffGen generates documents. Its "stable" documents may use any word and
// value; its "volatile" ones only frequent words and pooled values, which
// the first stable documents are made to cover.
type diffGen struct {
	r       *mrand.Rand
	nextID  int
	nstable int
}

func newDiffGen(seed uint64) *diffGen {
	return &diffGen{r: mrand.New(mrand.NewPCG(seed, 0x5eed))}
}

func (g *diffGen) pick(s []string) string { return s[g.r.IntN(len(s))] }

func (g *diffGen) text(min, max int, volatile bool) string {
	n := min + g.r.IntN(max-min+1)
	var w []string
	for len(w) < n {
		x := g.r.IntN(100)
		switch {
		case x < 8:
			w = append(w, strings.Fields(g.pick(diffPhrases))...)
		case x < 30:
			w = append(w, g.pick(diffStop))
		case x < 45 && !volatile:
			w = append(w, g.pick(diffRare))
		default:
			w = append(w, g.pick(diffFrequent))
		}
	}
	if g.r.IntN(3) == 0 {
		w[0] = strings.ToUpper(w[0][:1]) + w[0][1:]
	}
	s := strings.Join(w, " ")
	if g.r.IntN(4) == 0 {
		s += "."
	}
	return s
}

func (g *diffGen) doc(id string, volatile bool) genDoc {
	d := map[string]any{}
	cover := -1
	if !volatile {
		cover = g.nstable
		g.nstable++
	}
	choose := func(pool []string) string {
		if cover >= 0 && cover < len(pool) {
			return pool[cover]
		}
		return g.pick(pool)
	}
	d["project"] = choose(diffProjects)
	d["status"] = choose(diffStatuses)
	if cover < len(diffLabels) || g.r.IntN(3) > 0 {
		var ls []string
		if cover >= 0 && cover < len(diffLabels) {
			ls = append(ls, diffLabels[cover])
		}
		for i := g.r.IntN(3); i > 0; i-- {
			if l := g.pick(diffLabels); !slices.Contains(ls, l) {
				ls = append(ls, l)
			}
		}
		if len(ls) > 0 {
			d["labels"] = ls
		}
	}
	d["title"] = g.text(3, 10, volatile)
	if cover >= 0 && cover < len(diffFrequent) {
		// Every frequent word in every text field of a stable document.
		d["title"] = d["title"].(string) + " " + diffFrequent[cover]
	}
	if g.r.IntN(8) > 0 || cover >= 0 && cover < len(diffFrequent) {
		b := g.text(8, 40, volatile)
		if cover >= 0 && cover < len(diffFrequent) {
			b += " " + diffFrequent[cover]
		}
		d["body"] = b
	}
	switch {
	case cover >= 0 && cover <= 20:
		d["votes"] = cover
	case volatile:
		d["votes"] = g.r.IntN(21)
	case g.r.IntN(10) == 0:
		d["votes"] = float64(g.r.IntN(200)) / 8
	case g.r.IntN(10) > 0:
		d["votes"] = g.r.IntN(21)
	}
	switch {
	case cover >= 0 && cover < len(diffDates):
		d["created"] = diffDates[cover]
	case volatile || g.r.IntN(2) == 0:
		d["created"] = g.pick(diffDates)
	case g.r.IntN(6) > 0:
		d["created"] = fmt.Sprintf("%04d-%02d-%02dT%02d:00:00Z", 2013+g.r.IntN(6), 1+g.r.IntN(12), 1+g.r.IntN(28), g.r.IntN(24))
	}
	nc := g.r.IntN(4)
	if cover >= 0 && cover < len(diffFrequent) {
		nc = max(nc, 1)
	}
	var cs []any
	for i := 0; i < nc; i++ {
		c := map[string]any{"author": g.pick(diffAuthors), "body": g.text(3, 12, volatile)}
		if i == 0 && cover >= 0 {
			if cover < len(diffAuthors) {
				c["author"] = diffAuthors[cover]
			}
			if cover < len(diffFrequent) {
				c["body"] = c["body"].(string) + " " + diffFrequent[cover]
			}
		}
		cs = append(cs, c)
	}
	if len(cs) > 0 {
		d["comments"] = cs
	}
	body, err := json.Marshal(d)
	if err != nil {
		panic(err)
	}
	return genDoc{id: id, body: body}
}

func (g *diffGen) newID() string {
	g.nextID++
	return fmt.Sprintf("d-%04d", g.nextID)
}

func (g *diffGen) stableDocs(n int) []genDoc {
	out := make([]genDoc, n)
	for i := range out {
		out[i] = g.doc(g.newID(), false)
	}
	return out
}

// diffSeed returns the seed of a differential run: BLINDEX_DIFF_SEED, or
// def. It is logged so that a failure replays.
func diffSeed(t *testing.T, def uint64) uint64 {
	t.Helper()
	seed := def
	if s := os.Getenv("BLINDEX_DIFF_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("BLINDEX_DIFF_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("seed %d (replay with BLINDEX_DIFF_SEED=%d go test ./index/ -run '%s')", seed, seed, t.Name())
	return seed
}

// newBleveIndex returns plaintext bleve (scorch) with m's mapping.
func newPlainBleve(t testing.TB, m *tokenize.Mapping) bleve.Index {
	t.Helper()
	b, err := bleve.NewUsing(t.TempDir()+"/b", m.Bleve(), scorch.Name, scorch.Name, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func bleveApply(t testing.TB, b bleve.Index, ops []Op) {
	t.Helper()
	batch := b.NewBatch()
	for _, op := range ops {
		if op.Delete {
			batch.Delete(op.ID)
			continue
		}
		var data any
		if err := json.Unmarshal(op.Body, &data); err != nil {
			t.Fatal(err)
		}
		if err := batch.Index(op.ID, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Batch(batch); err != nil {
		t.Fatal(err)
	}
}

// diffRequest is one request of the differential suite, built anew for
// each engine.
type diffRequest struct {
	name string
	make func() *bleve.SearchRequest
	// ranked: ordered by score (ties by id), compared up to score ties.
	// Otherwise the sort is total and hits are compared exactly.
	ranked bool
}

func qsReq(q string) func() *bleve.SearchRequest {
	return func() *bleve.SearchRequest {
		return bleve.NewSearchRequest(bleve.NewQueryStringQuery(q))
	}
}

func jsonReq(t testing.TB, js string) func() *bleve.SearchRequest {
	if _, err := query.ParseQuery([]byte(js)); err != nil {
		t.Fatalf("bad JSON query %s: %v", js, err)
	}
	return func() *bleve.SearchRequest {
		q, _ := query.ParseQuery([]byte(js))
		return bleve.NewSearchRequest(q)
	}
}

var diffQueryStrings = []string{
	// terms and fields
	"connection", "zookeeper", "memorial", "title:timeout", "body:memory", "comments.body:restart",
	"project:HDFS", "project:hdfs", `status:"In Progress"`, "labels:perf", "comments.author:alice",
	"nosuchword", "title:nosuchword", "nosuchfield:memory",
	// phrases, with stop words inside (position gaps) and on a field
	// without term vectors (matches nothing in bleve)
	`"connection reset"`, `title:"connection to server"`, `"connection to server"`, `"reset by peer"`,
	`title:"connection of the server"`, `body:"connection reset"`, `comments.body:"disk full"`,
	`"memory leak in the client"`, `title:"reset connection"`, `"connection"`,
	// boolean
	"+project:HDFS +status:Open", "+project:YARN -status:Closed", "memory -timeout",
	"+title:error memory disk", "+labels:patch +memory", "memory disk timeout cluster",
	// boosts
	"memory^3 disk", "title:memory^2.5 body:memory", "+labels:patch^2 +memory^0.5",
	// wildcard, regexp, fuzzy
	"repl*", "title:repl*", "*nag", "a?c", "_all:a?c", "sch?dul*", "Repl*", "/rep.*/",
	"title:/ma[nt].*/", "comments.body:/dis.?/", "timout~1", "conection~2", "memroy~", "title:serer~1",
	"zookeper~1 kerberos", "servers~2",
	// numeric and date ranges, bare numbers
	"votes:>10", "votes:>=10", "votes:<3", "votes:<=3", "+votes:>=5 +votes:<8", "votes:>7.4", "votes:<0",
	`created:>"2016-01-01T00:00:00Z"`, `created:<"2015-06-01"`,
	`+created:>="2014-06-01T00:00:00Z" +created:<="2016-06-01T00:00:00Z"`, "7", "8080", "42", "3.14",
	// _all, only-minus
	"_all:memory", "-project:HDFS", "-project:HDFS -status:Open", "+memory -project:HDFS -labels:perf",
}

var diffJSONQueries = []string{
	`{"conjuncts":[{"match":"memory","field":"title"},{"term":"HDFS","field":"project"}]}`,
	`{"disjuncts":[{"match":"memory","field":"title"},{"match":"disk","field":"body"},{"match":"timeout"}],"min":2}`,
	`{"disjuncts":[{"match":"memory","field":"title"},{"match":"disk","field":"body"},{"match":"timeout"}]}`,
	`{"must":{"conjuncts":[{"match":"connection"}]},"should":{"disjuncts":[{"match":"reset"},{"match":"server"}],"min":0},"must_not":{"disjuncts":[{"term":"Closed","field":"status"}]}}`,
	`{"must":{"conjuncts":[{"match":"connection"}]},"should":{"disjuncts":[{"match":"reset"},{"match":"server"}],"min":1}}`,
	`{"match_phrase":"connection reset","field":"title"}`,
	`{"match":"memory disk","operator":"and"}`,
	`{"match":"conection","fuzziness":1}`,
	`{"prefix":"repl","field":"title"}`,
	`{"min":5,"max":10,"inclusive_min":true,"inclusive_max":false,"field":"votes"}`,
	`{"start":"2015-01-01T00:00:00Z","end":"2016-01-01T00:00:00Z","field":"created"}`,
	`{"ids":["d-0001","d-0003","d-0131","d-9999"]}`,
	`{"wildcard":"*ori","field":"title"}`,
	`{"regexp":"rep.*","field":"body"}`,
	`{"match_all":{}}`,
	`{"match_none":{}}`,
	`{"term":"memori","field":"title","boost":3}`,
	`{"terms":["connect","reset"],"field":"title"}`,
	`{"fuzzy":"memori","field":"title","fuzziness":2}`,
	`{"min":"HDFS","max":"KAFKA","inclusive_max":true,"field":"project"}`,
	`{"query":"+memory -disk title:server"}`,
	`{"conjuncts":[{"query":"memory"},{"disjuncts":[{"term":"perf","field":"labels"},{"term":"patch","field":"labels"}]}]}`,
}

// diffExpectNoHits are the requests that match nothing by design; every
// other request must match something, or the comparison proves little.
var diffExpectNoHits = map[string]bool{
	"project:hdfs": true, "nosuchword": true, "title:nosuchword": true, "nosuchfield:memory": true,
	`body:"connection reset"`: true, // no term vectors: bleve's phrase matches nothing
	"Repl*":                   true, // wildcards are not analyzed
	"votes:<0":                true,
	"MatchNone":               true,
	`json {"match_none":{}}`:  true,
}

func diffRequests(t testing.TB) []diffRequest {
	var reqs []diffRequest
	for _, q := range diffQueryStrings {
		reqs = append(reqs, diffRequest{name: q, make: qsReq(q), ranked: true})
	}
	for _, q := range diffJSONQueries {
		reqs = append(reqs, diffRequest{name: "json " + q, make: jsonReq(t, q), ranked: true})
	}
	reqs = append(reqs,
		diffRequest{name: "MatchNone", ranked: true, make: func() *bleve.SearchRequest { return bleve.NewSearchRequest(bleve.NewMatchNoneQuery()) }},
		diffRequest{name: "MatchAll", ranked: true, make: func() *bleve.SearchRequest { return bleve.NewSearchRequest(bleve.NewMatchAllQuery()) }},
	)
	sorted := func(name, q string, sortBy ...string) {
		reqs = append(reqs, diffRequest{name: name, make: func() *bleve.SearchRequest {
			r := bleve.NewSearchRequest(bleve.NewQueryStringQuery(q))
			r.SortBy(sortBy)
			return r
		}})
	}
	sorted("sort votes,_id", "connection", "votes", "_id")
	sorted("sort -votes,-_id", "connection", "-votes", "-_id")
	sorted("sort project,-created,_id", "memory", "project", "-created", "_id")
	sorted("sort -labels,_id all", "-nosuchword", "-labels", "_id")
	sorted("sort status,-_score,_id", "memory disk", "status", "-_score", "_id")
	reqs = append(reqs, diffRequest{name: "sort votes missing first", make: func() *bleve.SearchRequest {
		r := bleve.NewSearchRequest(bleve.NewQueryStringQuery("server"))
		r.Sort = search.SortOrder{&search.SortField{Field: "votes", Missing: search.SortFieldMissingFirst}, &search.SortDocID{}}
		return r
	}})
	facets := func(name, q string) {
		reqs = append(reqs, diffRequest{name: name, ranked: true, make: func() *bleve.SearchRequest {
			r := bleve.NewSearchRequest(bleve.NewQueryStringQuery(q))
			r.AddFacet("projects", bleve.NewFacetRequest("project", 3))
			r.AddFacet("labels", bleve.NewFacetRequest("labels", 10))
			r.AddFacet("status", bleve.NewFacetRequest("status", 10))
			vf := bleve.NewFacetRequest("votes", 5)
			lo, mid, hi := 0.0, 5.0, 10.0
			vf.AddNumericRange("low", &lo, &mid)
			vf.AddNumericRange("mid", &mid, &hi)
			vf.AddNumericRange("high", &hi, nil)
			r.AddFacet("votes", vf)
			df := bleve.NewFacetRequest("created", 5)
			df.AddDateTimeRangeString("before2015", nil, strPtr("2015-01-01T00:00:00Z"))
			df.AddDateTimeRangeString("2015-2016", strPtr("2015-01-01T00:00:00Z"), strPtr("2017-01-01T00:00:00Z"))
			df.AddDateTimeRangeString("after2016", strPtr("2017-01-01T00:00:00Z"), nil)
			r.AddFacet("created", df)
			return r
		}})
	}
	facets("facets connection", "connection")
	facets("facets all", "-nosuchword")
	reqs = append(reqs, diffRequest{name: "stored fields and highlight", ranked: true, make: func() *bleve.SearchRequest {
		r := bleve.NewSearchRequest(bleve.NewQueryStringQuery("title:memory title:connection"))
		r.Fields = []string{"title", "project"}
		r.Highlight = bleve.NewHighlightWithStyle("html")
		r.Highlight.AddField("title")
		return r
	}})
	return reqs
}

func strPtr(s string) *string { return &s }

// diffRun runs req with size/from against an engine.
type searcher func(*bleve.SearchRequest) (*bleve.SearchResult, error)

func blindexSearcher(in *Instance) searcher {
	return func(r *bleve.SearchRequest) (*bleve.SearchResult, error) { return in.Search(context.Background(), r) }
}

func bleveSearcher(b bleve.Index) searcher {
	return func(r *bleve.SearchRequest) (*bleve.SearchResult, error) { return b.Search(r) }
}

func runReq(t testing.TB, s searcher, dr diffRequest, size, from int) *bleve.SearchResult {
	t.Helper()
	r := dr.make()
	r.Size, r.From = size, from
	if isScoreOnlySort(r.Sort) {
		// bleve.NewSearchRequest sorts by score alone; break ties by id
		// in both engines.
		r.SortBy([]string{"-_score", "_id"})
	}
	res, err := s(r)
	if err != nil {
		t.Fatalf("%s: %v", dr.name, err)
	}
	return res
}

// isScoreOnlySort reports whether a sort order is empty or bleve's default
// (descending score only).
func isScoreOnlySort(o search.SortOrder) bool {
	if len(o) == 0 {
		return true
	}
	s, ok := o[0].(*search.SortScore)
	return len(o) == 1 && ok && s.Desc
}

func relNear(a, b, tol float64) bool {
	if a == b {
		return true
	}
	d := math.Abs(a - b)
	return d <= tol*math.Max(math.Abs(a), math.Abs(b)) || d < 1e-300
}

// compareRanked compares two hit lists ordered by score then id: the sets
// of ids at each distinct score (within 1e-9 relative) must be equal, and
// scores equal within scoreTol relative. It returns the largest relative
// score difference seen.
func compareRanked(t testing.TB, name string, got, want search.DocumentMatchCollection, scoreTol float64) float64 {
	t.Helper()
	worst := 0.0
	if len(got) != len(want) {
		t.Errorf("%s: %d hits, bleve %d\n got %s\nwant %s", name, len(got), len(want), hitList(got, 12), hitList(want, 12))
		return worst
	}
	for i := 0; i < len(want); {
		j := i + 1
		for j < len(want) && relNear(want[j].Score, want[i].Score, 1e-9) {
			j++
		}
		var g, w []string
		for k := i; k < j; k++ {
			g = append(g, got[k].ID)
			w = append(w, want[k].ID)
			if d := math.Abs(got[k].Score-want[k].Score) / math.Max(math.Abs(want[k].Score), 1e-300); d > worst && want[k].Score != got[k].Score {
				worst = d
			}
			if !relNear(got[k].Score, want[k].Score, scoreTol) {
				t.Errorf("%s: hit %d (%s) score %.17g, bleve %.17g (%s)", name, k, got[k].ID, got[k].Score, want[k].Score, want[k].ID)
				return worst
			}
		}
		slices.Sort(g)
		slices.Sort(w)
		if !slices.Equal(g, w) {
			t.Errorf("%s: hits %d..%d at score %.9g are %v, bleve %v\n got %s\nwant %s", name, i, j-1, want[i].Score, g, w, hitList(got, 12), hitList(want, 12))
			return worst
		}
		i = j
	}
	return worst
}

func compareExact(t testing.TB, name string, got, want search.DocumentMatchCollection) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d hits, bleve %d", name, len(got), len(want))
		return
	}
	for i := range want {
		if got[i].ID != want[i].ID || !slices.Equal(got[i].Sort, want[i].Sort) {
			t.Errorf("%s: hit %d is %s %q, bleve %s %q\n got %s\nwant %s", name, i, got[i].ID, got[i].Sort, want[i].ID, want[i].Sort, hitList(got, 12), hitList(want, 12))
			return
		}
	}
}

func hitList(h search.DocumentMatchCollection, n int) string {
	var b strings.Builder
	for i, d := range h {
		if i == n {
			fmt.Fprintf(&b, " … (%d more)", len(h)-n)
			break
		}
		fmt.Fprintf(&b, " %s:%.6g", d.ID, d.Score)
	}
	return b.String()
}

func idSet(h search.DocumentMatchCollection) []string {
	out := make([]string, len(h))
	for i, d := range h {
		out[i] = d.ID
	}
	slices.Sort(out)
	return out
}

// compareRound runs every request against blindex, the fresh single-segment
// bleve and the incremental bleve.
func compareRound(t *testing.T, round string, in *Instance, fresh, inc bleve.Index, live int) {
	t.Helper()
	bx, fr, ic := blindexSearcher(in), bleveSearcher(fresh), bleveSearcher(inc)
	all := live + 10
	worst := 0.0
	nonEmpty := 0
	for _, dr := range diffRequests(t) {
		name := round + " " + dr.name
		got := runReq(t, bx, dr, all, 0)
		want := runReq(t, fr, dr, all, 0)
		if got.Total != want.Total {
			t.Errorf("%s: total %d, bleve %d", name, got.Total, want.Total)
			continue
		}
		if got.Total > 0 {
			nonEmpty++
		} else if !diffExpectNoHits[dr.name] {
			t.Errorf("%s: no hits in either engine; the generator should make this query match", name)
		}
		if dr.ranked {
			if w := compareRanked(t, name, got.Hits, want.Hits, 1e-6); w > worst {
				worst = w
			}
			if !relNear(got.MaxScore, want.MaxScore, 1e-6) {
				t.Errorf("%s: max score %v, bleve %v", name, got.MaxScore, want.MaxScore)
			}
		} else {
			compareExact(t, name, got.Hits, want.Hits)
		}
		if !reflect.DeepEqual(got.Facets, want.Facets) {
			gj, _ := json.Marshal(got.Facets)
			wj, _ := json.Marshal(want.Facets)
			t.Errorf("%s: facets\n got %s\nwant %s", name, gj, wj)
		}
		for i := range want.Hits {
			if i < len(got.Hits) && got.Hits[i].ID == want.Hits[i].ID {
				if !reflect.DeepEqual(got.Hits[i].Fields, want.Hits[i].Fields) {
					t.Errorf("%s: hit %s fields %v, bleve %v", name, want.Hits[i].ID, got.Hits[i].Fields, want.Hits[i].Fields)
				}
				if !reflect.DeepEqual(got.Hits[i].Fragments, want.Hits[i].Fragments) {
					t.Errorf("%s: hit %s fragments %v, bleve %v", name, want.Hits[i].ID, got.Hits[i].Fragments, want.Hits[i].Fragments)
				}
			}
		}
		// Paging: every page is the matching slice of the full list.
		for _, pg := range [][2]int{{7, 0}, {7, 7}, {5, 23}, {10, live - 3}, {0, 0}} {
			p := runReq(t, bx, dr, pg[0], max(pg[1], 0))
			lo := min(max(pg[1], 0), len(got.Hits))
			hi := min(lo+pg[0], len(got.Hits))
			if p.Total != got.Total {
				t.Errorf("%s size %d from %d: total %d, want %d", name, pg[0], pg[1], p.Total, got.Total)
			}
			if !slices.Equal(idsOf(p.Hits), idsOf(got.Hits[lo:hi])) {
				t.Errorf("%s size %d from %d: %v, want %v", name, pg[0], pg[1], idsOf(p.Hits), idsOf(got.Hits[lo:hi]))
			}
		}
		// The incremental bleve agrees on which documents match.
		iw := runReq(t, ic, dr, all, 0)
		if iw.Total != got.Total || !slices.Equal(idSet(iw.Hits), idSet(got.Hits)) {
			t.Errorf("%s: total %d, incremental bleve %d (ids differ: %v)", name, got.Total, iw.Total, !slices.Equal(idSet(iw.Hits), idSet(got.Hits)))
		}
	}
	// Search after: resume from hit 10 of a ranked list.
	dr := diffRequest{name: "search after", make: qsReq("memory disk")}
	full := runReq(t, bx, dr, all, 0)
	if len(full.Hits) > 12 {
		r := dr.make()
		r.Size = 5
		r.SortBy([]string{"-_score", "_id"})
		// The score's sort value is a placeholder: search-after takes
		// the score itself.
		after := []string{strconv.FormatFloat(full.Hits[10].Score, 'g', -1, 64), full.Hits[10].ID}
		r.SetSearchAfter(after)
		for _, s := range []searcher{bx, fr} {
			res, err := s(r)
			if err != nil {
				t.Fatalf("search after: %v", err)
			}
			want := idsOf(full.Hits[11:min(16, len(full.Hits))])
			if !slices.Equal(idsOf(res.Hits), want) {
				t.Errorf("%s search after %v: %v, want %v", round, after, idsOf(res.Hits), want)
			}
		}
	}
	t.Logf("%s: %d live documents, %d requests (%d with hits); largest relative score difference %.3g", round, live, len(diffRequests(t)), nonEmpty, worst)
}

func idsOf(h search.DocumentMatchCollection) []string {
	out := make([]string, len(h))
	for i, d := range h {
		out[i] = d.ID
	}
	return out
}

// compareCardinality checks that blindex and the fresh bleve see the same
// BM25 statistics: document count and per-field dictionary size.
func compareCardinality(t *testing.T, round string, in *Instance, fresh bleve.Index) {
	t.Helper()
	adv, err := fresh.Advanced()
	if err != nil {
		t.Fatal(err)
	}
	br, err := adv.Reader()
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	r, err := openBleveReader(in)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n1, _ := r.DocCount()
	n2, _ := br.DocCount()
	if n1 != n2 {
		t.Errorf("%s: doc count %d, bleve %d", round, n1, n2)
	}
	fields, _ := br.Fields()
	for _, f := range fields {
		if f == "_id" {
			continue // not scored; blindex keeps deleted ids' terms
		}
		c1, _ := r.FieldCardinality(f)
		c2, _ := br.(bindex.BM25Reader).FieldCardinality(f)
		if c1 != c2 {
			t.Errorf("%s: field %s has %d distinct terms in blindex, %d in a one-segment bleve of the same live documents (the generator keeps deleted documents' terms alive, so they should agree)", round, f, c1, c2)
		}
	}
}

// diffBatches is the history of a differential run: batches of stable
// documents, volatile documents, updates (some twice in one batch),
// deletes, an index-then-delete and a delete-then-index of one id in one
// batch, re-adding deleted ids, and a batch of only deletes and updates.
func diffBatches(g *diffGen) [][]Op {
	var batches [][]Op
	var volatile []string
	deleted := map[string]bool{}
	stable := func(n int) []Op {
		var ops []Op
		for _, d := range g.stableDocs(n) {
			ops = append(ops, Op{ID: d.id, Body: d.body})
		}
		return ops
	}
	vol := func(n int) []Op {
		var ops []Op
		for i := 0; i < n; i++ {
			d := g.doc(g.newID(), true)
			volatile = append(volatile, d.id)
			ops = append(ops, Op{ID: d.id, Body: d.body})
		}
		return ops
	}
	pickVol := func() string {
		for {
			id := volatile[g.r.IntN(len(volatile))]
			if !deleted[id] {
				return id
			}
		}
	}
	update := func(n int) []Op {
		var ops []Op
		for i := 0; i < n; i++ {
			id := pickVol()
			ops = append(ops, Op{ID: id, Body: g.doc(id, true).body})
		}
		return ops
	}
	del := func(n int) []Op {
		var ops []Op
		for i := 0; i < n; i++ {
			id := pickVol()
			deleted[id] = true
			ops = append(ops, Op{ID: id, Delete: true})
		}
		return ops
	}
	shuffle := func(ops []Op) []Op {
		g.r.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
		return ops
	}
	batches = append(batches, shuffle(append(stable(110), vol(30)...)))
	b2 := append(stable(50), vol(20)...)
	b2 = append(b2, update(12)...)
	b2 = append(b2, del(6)...)
	batches = append(batches, shuffle(b2))
	b3 := stable(40)
	u := update(8)
	b3 = append(b3, u...)
	// The same ids again, later in the batch: the last operation wins.
	for _, op := range u[:4] {
		b3 = append(b3, Op{ID: op.ID, Body: g.doc(op.ID, true).body})
	}
	x := pickVol()
	b3 = append(b3, Op{ID: x, Body: g.doc(x, true).body}, Op{ID: x, Delete: true})
	deleted[x] = true
	y := pickVol()
	b3 = append(b3, Op{ID: y, Delete: true}, Op{ID: y, Body: g.doc(y, true).body})
	b3 = append(b3, del(5)...)
	// Re-add two deleted ids.
	n := 0
	for _, id := range volatile {
		if deleted[id] && id != x && n < 2 {
			b3 = append(b3, Op{ID: id, Body: g.doc(id, true).body})
			delete(deleted, id)
			n++
		}
	}
	batches = append(batches, b3)
	batches = append(batches, shuffle(append(del(5), update(5)...)))
	batches = append(batches, shuffle(append(stable(15), vol(10)...)))
	return batches
}

func TestDiffBleve(t *testing.T) {
	for _, def := range []uint64{20251127, 7} {
		t.Run(fmt.Sprintf("seed%d", def), func(t *testing.T) {
			seed := diffSeed(t, def)
			m := mustMapping(t, diffMapping)
			e := newEnv(t)
			// A flush per batch, so that terms span several runs that
			// get merged.
			e.opts.CompactEvery = 1
			var merges uint64
			in := e.create(t, "diff", m)
			inc := newPlainBleve(t, m)
			defer inc.Close()
			ctx := context.Background()
			live := map[string][]byte{}
			for bi, ops := range diffBatches(newDiffGen(seed)) {
				if err := in.Apply(ctx, ops); err != nil {
					t.Fatalf("batch %d: %v", bi+1, err)
				}
				bleveApply(t, inc, ops)
				for _, op := range ops {
					if op.Delete {
						delete(live, op.ID)
					} else {
						live[op.ID] = op.Body
					}
				}
				if bi == 2 {
					// Reopen: the state comes back from the snapshot and log.
					merges += in.Metrics().RunsMerged
					in.Close()
					in = e.open(t, "diff")
				}
				round := fmt.Sprintf("after batch %d", bi+1)
				checkLiveDocs(t, round, in, live)
				fresh := newPlainBleve(t, m)
				var all []Op
				for id, body := range live {
					all = append(all, Op{ID: id, Body: body})
				}
				sort.Slice(all, func(i, j int) bool { return all[i].ID < all[j].ID })
				bleveApply(t, fresh, all)
				compareCardinality(t, round, in, fresh)
				compareRound(t, round, in, fresh, inc, len(live))
				fresh.Close()
				if t.Failed() {
					t.Fatalf("stopping after %s (seed %d)", round, seed)
				}
			}
			mt := in.Metrics()
			merges += mt.RunsMerged
			t.Logf("runs written after the reopen %d, merges %d", mt.RunsWritten, merges)
			if merges == 0 {
				t.Error("no runs were merged: the test does not exercise merging")
			}
		})
	}
}

// checkLiveDocs checks Get and DocCount against the live set.
func checkLiveDocs(t *testing.T, round string, in *Instance, live map[string][]byte) {
	t.Helper()
	ctx := context.Background()
	n, err := in.DocCount()
	if err != nil || n != uint64(len(live)) {
		t.Errorf("%s: DocCount = %d, %v; want %d", round, n, err, len(live))
	}
	for id, body := range live {
		got, err := in.Get(ctx, id)
		if err != nil || string(got) != string(body) {
			t.Errorf("%s: Get(%s) = %.40q, %v; want %.40q", round, id, got, err, body)
		}
	}
}

// TestNULInFieldNames checks that a field name and a term that contain
// NUL bytes never read as another (field, term) pair: a JSON key may hold
// \u0000 and becomes a dynamic field's name.
func TestNULInFieldNames(t *testing.T) {
	m := mustMapping(t, `{"default_analyzer": "keyword", "scoring_model": "bm25", "default_mapping": {"enabled": true, "dynamic": true}}`)
	ops := []Op{
		{ID: "one", Body: []byte(`{"a\u0000b": "c", "x": "y"}`)},
		{ID: "two", Body: []byte(`{"a": "b\u0000c", "x\u0000": "y"}`)},
		{ID: "three", Body: []byte(`{"a\u0000": "b\u0000c"}`)},
	}
	e := newEnv(t)
	in := e.create(t, "nul", m)
	if err := in.Apply(context.Background(), ops); err != nil {
		t.Fatal(err)
	}
	b := newPlainBleve(t, m)
	defer b.Close()
	bleveApply(t, b, ops)
	for _, fq := range [][2]string{{"a", "b\x00c"}, {"a\x00b", "c"}, {"a\x00", "b\x00c"}, {"x", "y"}, {"x\x00", "y"}, {"a", "b"}} {
		dr := diffRequest{name: fmt.Sprintf("%q:%q", fq[0], fq[1]), make: func() *bleve.SearchRequest {
			q := query.NewTermQuery(fq[1])
			q.SetField(fq[0])
			return bleve.NewSearchRequest(q)
		}}
		got := runReq(t, blindexSearcher(in), dr, 10, 0)
		want := runReq(t, bleveSearcher(b), dr, 10, 0)
		if !slices.Equal(idsOf(got.Hits), idsOf(want.Hits)) {
			t.Errorf("%s: %v, bleve %v", dr.name, idsOf(got.Hits), idsOf(want.Hits))
		}
	}
}
