package index

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/blevesearch/bleve/v2"

	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/store"
)

// Crash safety: a child process indexes batches with synced commits and
// prints each acknowledged batch; the parent kills it with SIGKILL at a
// random point, reopens, and checks that every acknowledged batch is there,
// that batches are atomic and in order (the committed batches are a prefix
// of the history, each entirely), that search agrees with the stored
// documents, and that Check passes. Then it does it again from where the
// index stands.

const crashMapping = `{
 "default_analyzer": "en",
 "scoring_model": "bm25",
 "default_mapping": {
  "enabled": true,
  "dynamic": false,
  "properties": {
   "title": {"fields": [{"name": "title", "type": "text", "analyzer": "en", "index": true, "store": true, "include_term_vectors": true, "include_in_all": true}]},
   "tag": {"fields": [{"name": "tag", "type": "text", "analyzer": "keyword", "index": true, "docvalues": true}]},
   "ver": {"fields": [{"name": "ver", "type": "number", "index": true, "docvalues": true}]}
  }
 }
}`

const (
	crashPerBatch = 20
	crashEnvDir   = "BLINDEX_CRASH_DIR"
	crashEnvHome  = "BLINDEX_CRASH_HOME"
	crashEnvStart = "BLINDEX_CRASH_START"
)

func crashID(b, i int) string { return fmt.Sprintf("c-%05d", b*crashPerBatch+i) }

// crashBatch is batch b of the history: 20 new documents, updates of five
// documents of the previous batch, and the deletion of one document two
// batches back.
func crashBatch(b int) []Op {
	r := mrand.New(mrand.NewPCG(uint64(b), 77))
	doc := func(id string) []byte {
		words := make([]string, 5+r.IntN(20))
		for i := range words {
			words[i] = diffFrequent[r.IntN(len(diffFrequent))]
		}
		body, _ := json.Marshal(map[string]any{"title": strings.Join(words, " "), "tag": fmt.Sprintf("b%05d", b), "ver": b, "id": id})
		return body
	}
	var ops []Op
	for i := 0; i < crashPerBatch; i++ {
		ops = append(ops, Op{ID: crashID(b, i), Body: doc(crashID(b, i))})
	}
	if b >= 1 {
		for i := 0; i < 5; i++ {
			ops = append(ops, Op{ID: crashID(b-1, i), Body: doc(crashID(b-1, i))})
		}
	}
	if b >= 2 {
		ops = append(ops, Op{ID: crashID(b-2, crashPerBatch-1), Delete: true})
	}
	return ops
}

// crashExpected is the live set (id → version) after batches [0, n).
func crashExpected(n int) map[string]int {
	live := map[string]int{}
	for b := 0; b < n; b++ {
		for _, op := range crashBatch(b) {
			if op.Delete {
				delete(live, op.ID)
			} else {
				live[op.ID] = b
			}
		}
	}
	return live
}

// crashOpen opens the store, keyring and instance in dir/home.
func crashOpen(ctx context.Context, dir, home string, compactEvery int) (*store.Pebble, *keys.Keyring, *Instance, error) {
	st, err := store.OpenPebble(dir, store.PebbleOptions{})
	if err != nil {
		return nil, nil, nil, err
	}
	prov, err := keys.NewLocalProvider(home)
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	kr, err := keys.NewKeyring(prov, keys.KeyringOptions{})
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	in, err := Open(ctx, st, "crash", Options{Keyring: kr, CompactEvery: compactEvery})
	if err != nil {
		kr.Close()
		st.Close()
		return nil, nil, nil, err
	}
	return st, kr, in, nil
}

// TestCrashChild is the child process of TestCrashRecovery; it does nothing
// in a normal test run.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnvDir)
	if dir == "" {
		t.Skip("only runs as TestCrashRecovery's child process")
	}
	start, _ := strconv.Atoi(os.Getenv(crashEnvStart))
	ctx := context.Background()
	_, _, in, err := crashOpen(ctx, dir, os.Getenv(crashEnvHome), 3)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open:", err)
		os.Exit(2)
	}
	for b := start; b < start+1000; b++ {
		// Synced commits: Options.NoSync is false.
		if err := in.Apply(ctx, crashBatch(b)); err != nil {
			fmt.Fprintln(os.Stderr, "child: apply:", err)
			os.Exit(2)
		}
		fmt.Printf("ACK %d %s\n", b, crashID(b, crashPerBatch-1))
	}
	os.Exit(3) // never reached: the parent kills the child first
}

func TestCrashRecovery(t *testing.T) {
	ctx := context.Background()
	dir, home := t.TempDir(), t.TempDir()
	{
		st, err := store.OpenPebble(dir, store.PebbleOptions{})
		if err != nil {
			t.Fatal(err)
		}
		prov, err := keys.NewLocalProvider(home)
		if err != nil {
			t.Fatal(err)
		}
		kr, err := keys.NewKeyring(prov, keys.KeyringOptions{})
		if err != nil {
			t.Fatal(err)
		}
		in, err := Create(ctx, st, "crash", mustMapping(t, crashMapping), Meta{}, Options{Keyring: kr})
		if err != nil {
			t.Fatal(err)
		}
		in.Close()
		kr.Close()
		st.Close()
	}
	const seed = 1
	t.Logf("seed %d", seed)
	r := mrand.New(mrand.NewPCG(seed, 2))
	next := 0 // the first batch not known to be committed
	for round := 1; round <= 6; round++ {
		waitAcks := 2 + r.IntN(6)
		delay := time.Duration(r.IntN(8000)) * time.Microsecond
		acked := crashRunChild(t, dir, home, next, waitAcks, delay)
		t.Logf("round %d: started at batch %d, killed after %d acknowledged batches (+%v)", round, next, acked-next, delay)

		st, kr, in, err := crashOpen(ctx, dir, home, 3)
		if err != nil {
			t.Fatalf("round %d: reopening after the crash: %v", round, err)
		}
		committed := crashVerify(t, in, acked)
		if committed > acked+1 {
			t.Errorf("round %d: %d batches committed but the child had only started %d", round, committed, acked+1)
		}
		rep, err := in.Check(ctx)
		if err != nil {
			t.Errorf("round %d: Check: %v", round, err)
		} else if !rep.OK() {
			t.Errorf("round %d: Check found problems after the crash: %+v", round, rep.Problems)
		}
		in.Close()
		kr.Close()
		st.Close()
		if t.Failed() {
			t.Fatalf("round %d failed (seed %d)", round, seed)
		}
		next = committed
	}
}

// crashRunChild runs the child from batch start, kills it with SIGKILL
// after waitAcks acknowledgements and delay, and returns the number of the
// first batch not acknowledged.
func crashRunChild(t *testing.T, dir, home string, start, waitAcks int, delay time.Duration) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnvDir+"="+dir, crashEnvHome+"="+home, crashEnvStart+"="+strconv.Itoa(start))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := start
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(30 * time.Second)
	n := 0
	var killAt <-chan time.Time
	killed := false
	for !killed {
		select {
		case l, ok := <-lines:
			if !ok {
				cmd.Wait()
				t.Fatalf("the child exited before it was killed: %s", stderr.String())
			}
			var b int
			var last string
			if _, err := fmt.Sscanf(l, "ACK %d %s", &b, &last); err != nil {
				continue
			}
			if b != acked || last != crashID(b, crashPerBatch-1) {
				t.Fatalf("child acknowledged batch %d (%s), want %d", b, last, acked)
			}
			acked++
			n++
			if n == waitAcks {
				killAt = time.After(delay)
			}
		case <-killAt:
			cmd.Process.Signal(syscall.SIGKILL)
			killed = true
		case <-timeout:
			cmd.Process.Kill()
			t.Fatalf("the child did not acknowledge %d batches in 30s: %s", waitAcks, stderr.String())
		}
	}
	// Acknowledgements already printed before the kill count too.
	for l := range lines {
		var b int
		var last string
		if _, err := fmt.Sscanf(l, "ACK %d %s", &b, &last); err == nil && b == acked {
			acked++
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the child was not killed by SIGKILL: %v (%s)", err, stderr.String())
	}
	return acked
}

// crashVerify checks the index against the history and returns how many
// batches are committed.
func crashVerify(t *testing.T, in *Instance, acked int) int {
	t.Helper()
	ctx := context.Background()
	committed := 0
	for {
		if _, err := in.Get(ctx, crashID(committed, 0)); err != nil {
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get: %v", err)
			}
			break
		}
		committed++
	}
	if committed < acked {
		t.Errorf("batches %d..%d were acknowledged but are not in the index (first missing: %s)", committed, acked-1, crashID(committed, 0))
	}
	want := crashExpected(committed)
	n, err := in.DocCount()
	if err != nil || n != uint64(len(want)) {
		t.Errorf("DocCount = %d, %v; want %d", n, err, len(want))
	}
	byVer := map[int][]string{}
	for id, ver := range want {
		body, err := in.Get(ctx, id)
		if err != nil {
			t.Errorf("Get(%s): %v (acknowledged)", id, err)
			continue
		}
		var d struct {
			Ver int `json:"ver"`
		}
		if json.Unmarshal(body, &d); d.Ver != ver {
			t.Errorf("Get(%s): version %d, want %d: batches are not atomic or not in order", id, d.Ver, ver)
		}
		byVer[ver] = append(byVer[ver], id)
	}
	// Nothing of the first uncommitted batch is there (atomicity).
	for i := 0; i < crashPerBatch; i++ {
		if _, err := in.Get(ctx, crashID(committed, i)); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%s) of uncommitted batch %d: %v, want ErrNotFound", crashID(committed, i), committed, err)
		}
	}
	// Search agrees with the stored documents.
	for ver, ids := range byVer {
		lo, hi := float64(ver), float64(ver)
		incl := true
		q := bleve.NewNumericRangeInclusiveQuery(&lo, &hi, &incl, &incl)
		q.SetField("ver")
		req := bleve.NewSearchRequestOptions(q, 1000, 0, false)
		res, err := in.Search(ctx, req)
		if err != nil {
			t.Fatalf("Search ver:%d: %v", ver, err)
		}
		var got []string
		for _, h := range res.Hits {
			got = append(got, h.ID)
		}
		if len(got) != len(ids) || !sameSet(got, ids) {
			t.Errorf("Search ver:%d = %d documents, the stored documents say %d", ver, len(got), len(ids))
		}
	}
	all, err := in.Search(ctx, bleve.NewSearchRequestOptions(bleve.NewQueryStringQuery("connection server memory disk"), 1, 0, false))
	if err != nil {
		t.Fatal(err)
	}
	if all.Total == 0 && len(want) > 0 {
		t.Errorf("a text query over %d documents matches nothing", len(want))
	}
	t.Logf("%d batches committed (%d acknowledged), %d documents; %d match a text query", committed, acked, len(want), all.Total)
	return committed
}

func sameSet(a, b []string) bool {
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, v := range m {
		if v != 0 {
			return false
		}
	}
	return true
}
