package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TestCLIDiskFull runs the blindex binary on a real full disk: a 24 MiB
// tmpfs mounted in a private mount namespace (unshare -m, as root). index
// stops with exit 6 and says how many documents it committed, never a
// panic; search, get and check keep working on the full disk (read-only,
// within a time limit); a write command is refused at once (exit 6); after
// the tmpfs grows, writes resume and check is clean.
func TestCLIDiskFull(t *testing.T) {
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Skip("needs Linux and root for a private tmpfs (unshare -m)")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare(1)")
	}
	if err := exec.Command("unshare", "-m", "true").Run(); err != nil {
		t.Skipf("unshare -m is not permitted here: %v", err)
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "blindex")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	mapping, _ := filepath.Abs("testdata/mapping.json")

	// Documents of random words (they compress badly): ~12 MB, more than
	// the tmpfs can take.
	rng := rand.New(rand.NewPCG(7, 8))
	word := func() string {
		b := make([]byte, 3+rng.IntN(8))
		for i := range b {
			b[i] = byte('a' + rng.IntN(26))
		}
		return string(b)
	}
	var big bytes.Buffer
	for i := range 4000 {
		words := make([]string, 400)
		for j := range words {
			words[j] = word()
		}
		line, _ := json.Marshal(map[string]any{"id": fmt.Sprintf("D-%d", i), "project": "HDFS", "status": "Open", "votes": i,
			"summary": "disk full " + word(), "description": strings.Join(words, " ")})
		big.Write(append(line, '\n'))
	}
	bigFile := filepath.Join(tmp, "big.ndjson")
	smallFile := filepath.Join(tmp, "small.ndjson")
	if err := os.WriteFile(bigFile, big.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(smallFile, []byte(`{"id":"S-1","project":"HIVE","status":"Open","votes":1,"summary":"after the disk was full","description":"space is back"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	mnt := filepath.Join(tmp, "mnt")
	mnt2 := filepath.Join(tmp, "mnt2")
	out := filepath.Join(tmp, "out")
	for _, d := range []string{mnt, mnt2, out} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(mnt, "data")
	data2 := filepath.Join(mnt2, "data")
	// Each step: its output in out/NAME.{out,err} and its exit code in
	// out/NAME.rc. timeout(1) bounds the read-only commands: a hang is a
	// failure (exit 124), not a stuck test.
	step := func(name string, args ...string) string {
		q := []string{"timeout", "120"}
		for _, a := range append([]string{bin}, args...) {
			q = append(q, strconv.Quote(a))
		}
		return fmt.Sprintf("%s >%s/%s.out 2>%s/%s.err; echo $? >%s/%s.rc\n", strings.Join(q, " "), out, name, out, name, out, name)
	}
	script := "set -u\n" +
		fmt.Sprintf("mount -t tmpfs -o size=24m tmpfs %s || exit 90\n", mnt) +
		step("index-full", "index", "--data", data, "--instance", "t", "--mapping", mapping, "--batch", "200", bigFile) +
		fmt.Sprintf("df -B1 %s > %s/df.out\n", mnt, out) +
		step("search", "search", "--data", data, "--instance", "t", "summary:disk") +
		step("get", "get", "--data", data, "--instance", "t", "D-1") +
		step("check", "check", "--data", data, "--instance", "t") +
		step("index-again", "index", "--data", data, "--instance", "t", smallFile) +
		fmt.Sprintf("mount -o remount,size=256m %s || exit 91\n", mnt) +
		step("index-resumed", "index", "--data", data, "--instance", "t", smallFile) +
		step("get-resumed", "get", "--data", data, "--instance", "t", "S-1") +
		step("check-resumed", "check", "--data", data, "--instance", "t") +
		// Without the reserve, Pebble itself hits ENOSPC (a fatal commit
		// error inside Pebble): still exit 6 and no panic; reads work;
		// after the tmpfs grows, a new command writes again.
		fmt.Sprintf("mount -t tmpfs -o size=12m tmpfs %s || exit 92\n", mnt2) +
		step("nores-full", "index", "--data", data2, "--instance", "t", "--mapping", mapping, "--batch", "200", "--min-free-mb", "0", bigFile) +
		step("nores-search", "search", "--data", data2, "--instance", "t", "summary:disk") +
		step("nores-check", "check", "--data", data2, "--instance", "t") +
		fmt.Sprintf("mount -o remount,size=256m %s || exit 93\n", mnt2) +
		step("nores-resumed", "index", "--data", data2, "--instance", "t", smallFile) +
		step("nores-check-resumed", "check", "--data", data2, "--instance", "t")
	cmd := exec.Command("unshare", "-m", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "BLINDEX_HOME="+filepath.Join(tmp, "home"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("script: %v\n%s", err, b)
	}
	res := func(name string) result {
		o, _ := os.ReadFile(filepath.Join(out, name+".out"))
		e, _ := os.ReadFile(filepath.Join(out, name+".err"))
		rc, _ := os.ReadFile(filepath.Join(out, name+".rc"))
		code, err := strconv.Atoi(strings.TrimSpace(string(rc)))
		if err != nil {
			t.Fatalf("%s: no exit code", name)
		}
		return result{string(o), string(e), code}
	}
	noPanic := func(name string, r result) {
		if strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "goroutine ") {
			t.Errorf("%s panicked: %v", name, r)
		}
	}
	df, _ := os.ReadFile(filepath.Join(out, "df.out"))
	t.Logf("tmpfs after the first index:\n%s", df)

	r := res("index-full")
	noPanic("index on a full disk", r)
	if r.code != exitStorage || !strings.Contains(r.stderr, "disk") || !strings.Contains(r.stderr, "documents were indexed (committed) before it") || !strings.Contains(r.stderr, "next:") {
		t.Fatalf("index on a full disk: want exit %d saying how many documents were committed: %v", exitStorage, r)
	}
	t.Logf("index on a full disk: %s", strings.TrimSpace(r.stderr))
	for _, name := range []string{"search", "get", "check"} {
		r := res(name)
		noPanic(name, r)
		if r.code != 0 {
			t.Errorf("%s on a full disk: %v", name, r)
		}
	}
	if r := res("get"); !strings.Contains(r.stdout, "D-1") {
		t.Errorf("get on a full disk: %v", r)
	}
	r = res("index-again")
	noPanic("index-again", r)
	if r.code != exitStorage || !strings.Contains(r.stderr, "free space") {
		t.Errorf("index while the disk is still full: %v", r)
	}
	for _, name := range []string{"index-resumed", "get-resumed", "check-resumed"} {
		r := res(name)
		noPanic(name, r)
		if r.code != 0 {
			t.Errorf("%s after space returned: %v", name, r)
		}
	}
	if r := res("get-resumed"); !strings.Contains(r.stdout, "S-1") {
		t.Errorf("the document indexed after space returned: %v", r)
	}

	r = res("nores-full")
	noPanic("index without the reserve", r)
	t.Logf("index on a full disk without the reserve: exit %d: %s", r.code, strings.TrimSpace(r.stderr))
	if r.code != exitStorage || !strings.Contains(r.stderr, "documents were indexed (committed) before it") {
		t.Errorf("index on a full disk without the reserve: want exit %d: %v", exitStorage, r)
	}
	for _, name := range []string{"nores-search", "nores-check", "nores-resumed", "nores-check-resumed"} {
		r := res(name)
		noPanic(name, r)
		if r.code != 0 {
			t.Errorf("%s: %v", name, r)
		}
	}
}
