package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blindex/blindex/attach"
)

// attachCLI runs "blindex attach args..." in-process.
func attachCLI(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := runAttach(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return result{out.String(), errb.String(), code}
}

func TestAttachCLI(t *testing.T) {
	w := newWorkspace(t)
	dir := t.TempDir()
	// testdata/mapping.json is not dynamic: map attachments.content.
	m, err := os.ReadFile(w.mapping)
	if err != nil {
		t.Fatal(err)
	}
	var mj map[string]any
	json.Unmarshal(m, &mj)
	props := mj["default_mapping"].(map[string]any)["properties"].(map[string]any)
	props["attachments"] = map[string]any{"enabled": true, "properties": map[string]any{
		"content": map[string]any{"fields": []any{map[string]any{"name": "content", "type": "text", "analyzer": "en", "index": true, "include_in_all": true}}}}}
	m, _ = json.Marshal(mj)
	w.mapping = filepath.Join(dir, "mapping.json")
	if err := os.WriteFile(w.mapping, m, 0o600); err != nil {
		t.Fatal(err)
	}
	w.indexAll(t)
	logFile := filepath.Join(dir, "namenode.log")
	if err := os.WriteFile(logFile, []byte("WARN splendiferousquark in the namenode\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	common := []string{"--data", w.data, "--doc", "T-1"}

	r := attachCLI(t, "", append([]string{"add"}, append(common, logFile)...)...)
	if r.code != 0 {
		t.Fatalf("add: %v", r)
	}
	var info attach.Info
	if err := json.Unmarshal([]byte(r.stdout), &info); err != nil || info.Name != "namenode.log" || !info.Indexed {
		t.Fatalf("add output: %v %+v", err, info)
	}
	// Standard input, binary, with a name and type.
	bin := strings.Repeat("\x00\x01\x02", 50000)
	r = attachCLI(t, bin, append([]string{"add", "--name", "core.dump", "--type", "application/octet-stream"}, append(common, "-")...)...)
	if r.code != 0 {
		t.Fatalf("add -: %v", r)
	}
	var binInfo attach.Info
	json.Unmarshal([]byte(r.stdout), &binInfo)
	if binInfo.Size != int64(len(bin)) || binInfo.Indexed {
		t.Fatalf("binary info %+v", binInfo)
	}

	// The text is searchable with the document.
	s := must(t, 0, "search", "--data", w.data, "--json", "splendiferousquark")
	var sj searchJSON
	if err := json.Unmarshal([]byte(s.stdout), &sj); err != nil || len(sj.ids()) != 1 || sj.ids()[0] != "T-1" {
		t.Fatalf("search: %v %v", err, s)
	}

	r = attachCLI(t, "", append([]string{"ls"}, common...)...)
	if r.code != 0 || !strings.Contains(r.stdout, info.ID) || !strings.Contains(r.stdout, "core.dump") || !strings.HasPrefix(r.stdout, "ID") {
		t.Fatalf("ls: %v", r)
	}
	r = attachCLI(t, "", append([]string{"ls", "--json"}, common...)...)
	if r.code != 0 || strings.Count(r.stdout, "\n") != 2 {
		t.Fatalf("ls --json: %v", r)
	}

	r = attachCLI(t, "", append([]string{"get"}, append(common, binInfo.ID)...)...)
	if r.code != 0 || r.stdout != bin {
		t.Fatalf("get: exit %d, %d bytes", r.code, len(r.stdout))
	}
	out := filepath.Join(dir, "out.dump")
	r = attachCLI(t, "", append([]string{"get", "--out", out}, append(common, binInfo.ID)...)...)
	if got, _ := os.ReadFile(out); r.code != 0 || string(got) != bin {
		t.Fatalf("get --out: %v", r)
	}

	r = attachCLI(t, "", append([]string{"rm"}, append(common, info.ID)...)...)
	if r.code != 0 {
		t.Fatalf("rm: %v", r)
	}
	s = must(t, 0, "search", "--data", w.data, "--json", "splendiferousquark")
	sj = searchJSON{}
	json.Unmarshal([]byte(s.stdout), &sj)
	if len(sj.ids()) != 0 {
		t.Fatalf("text still found after rm: %v", s)
	}

	// Errors: exit 1 with a next step, never the document's content.
	r = attachCLI(t, "", append([]string{"get"}, append(common, info.ID)...)...)
	if r.code != exitUsage || !strings.Contains(r.stderr, "next:") {
		t.Fatalf("get of a deleted attachment: %v", r)
	}
	r = attachCLI(t, "", "add", "--data", w.data, "--doc", "NOPE", logFile)
	if r.code != exitUsage || strings.Contains(r.stderr, "splendiferousquark") {
		t.Fatalf("add to a missing document: %v", r)
	}
	r = attachCLI(t, "", "ls", "--data", w.data)
	if r.code != exitUsage || !strings.Contains(r.stderr, "--doc") {
		t.Fatalf("ls without --doc: %v", r)
	}
	r = attachCLI(t, "", "frob")
	if r.code != exitUsage {
		t.Fatalf("unknown subcommand: %v", r)
	}
	if r = attachCLI(t, "", "-h"); r.code != 0 || !strings.Contains(r.stdout, "attach add") {
		t.Fatalf("help: %v", r)
	}
}
