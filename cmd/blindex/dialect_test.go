package main

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// TestSearchDialect: --dialect boolean reads AND, OR, NOT and parentheses;
// without it the same text is bleve's syntax, unchanged.
func TestSearchDialect(t *testing.T) {
	w := newWorkspace(t)
	w.indexAll(t)
	for _, tc := range []struct {
		args []string
		want []string // sorted by id
	}{
		{[]string{"--dialect", "boolean", "project:HDFS AND (connection OR balancer) NOT status:Closed"}, []string{"T-1", "T-6"}},
		{[]string{"--dialect", "boolean", "connection AND refused"}, []string{"T-1"}},
		{[]string{"--dialect", "boolean", "--", "-project:HDFS AND NOT (connection OR metastore)"}, []string{"T-5", "T-8"}},
		{[]string{"--dialect", "boolean", "votes:>=5 OR status:Resolved"}, []string{"T-2", "T-3", "T-5", "T-7", "T-8"}},
		{[]string{"--dialect", "boolean", `{"term": "HDFS", "field": "project"}`}, []string{"T-1", "T-3", "T-6"}},
		// bleve's syntax: AND is a stop word, the rest should clauses.
		{[]string{"connection AND refused"}, []string{"T-1", "T-2", "T-6", "T-7"}},
		{[]string{"--dialect", "bleve", "connection AND refused"}, []string{"T-1", "T-2", "T-6", "T-7"}},
	} {
		got := sorted(w.searchJSON(t, tc.args...).ids())
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("search %q: ids %v, want %v", tc.args, got, tc.want)
		}
	}

	r := must(t, 1, "search", "--data", w.data, "--dialect", "boolean", "(connection OR refused")
	if !strings.Contains(r.stderr, "invalid query: column 23: expected ')' to close the '(' at column 1") || !strings.Contains(r.stderr, "next:") {
		t.Errorf("unclosed parenthesis: %v", r)
	}
	r = must(t, 1, "search", "--data", w.data, "--dialect", "lucene", "x")
	if !strings.Contains(r.stderr, "--dialect must be bleve or boolean") {
		t.Errorf("unknown dialect: %v", r)
	}

	// --queries reads every line in the dialect.
	r = blindex(t, "connection AND refused\n(balancer\n", "search", "--data", w.data, "--dialect", "boolean", "--queries", "-")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 2 {
		t.Fatalf("--queries: %v", r)
	}
	var first queryLine
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first.TotalHits != 1 || first.Hits[0].ID != "T-1" {
		t.Errorf("--queries first line %s (%v)", lines[0], err)
	}
	var second queryErrorLine
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil || !strings.Contains(second.Error, "column 10: expected ')'") {
		t.Errorf("--queries second line %s (%v)", lines[1], err)
	}
}
