package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestStrictMapping: a mapping key bleve does not know is ignored, as bleve
// ignores it, unless the instance is created with "strict_mapping", which
// refuses it naming its path; token map files are refused over HTTP.
func TestStrictMapping(t *testing.T) {
	ts := startServer(t, Config{Instance: testInstanceOptions})
	m := json.RawMessage(`{"byte_array_converter": "json", "default_analyzer": "en"}`)
	r := ts.do("POST", "/v1/instances", testAdminToken, map[string]any{"name": "strict", "mapping": m, "strict_mapping": true})
	want(t, r, http.StatusBadRequest, CodeInvalidMapping)
	if !strings.Contains(string(r.body), "byte_array_converter") {
		t.Errorf("strict refusal without the key's path: %s", r)
	}
	want(t, ts.do("POST", "/v1/instances", testAdminToken, map[string]any{"name": "lenient", "mapping": m}), http.StatusCreated, "")
	r = ts.do("POST", "/v1/instances", testAdminToken, map[string]any{"name": "file", "mapping": json.RawMessage(`{"analysis": {"token_maps": {"m": {"type": "custom", "filename": "/etc/passwd"}}}}`)})
	want(t, r, http.StatusBadRequest, CodeInvalidMapping)
	if !strings.Contains(string(r.body), "analysis.token_maps.m.filename") {
		t.Errorf("token map file over HTTP: %s", r)
	}
}
