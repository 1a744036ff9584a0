package server

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/blindex/blindex/store/postgres/pgtest"
)

// startNodes starts n servers over one database, sharing one key home, with
// an ownership lease of ttl.
func startNodes(t *testing.T, url string, n int, ttl time.Duration) []*testServer {
	t.Helper()
	home := t.TempDir()
	var out []*testServer
	for i := 0; i < n; i++ {
		out = append(out, startServer(t, Config{Store: url, Home: home, Instance: testInstanceOptions,
			Nodes: NodeOptions{OwnerTTL: ttl, Name: fmt.Sprintf("node-%d", i)}}))
	}
	return out
}

// leaseHolders returns the holder of every live instance lease.
func leaseHolders(t *testing.T, url string) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT holder FROM blindex_kv_lease WHERE scope LIKE 'instance/%' AND expires > now()")
	if err != nil {
		t.Fatal(err)
	}
	holders, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return holders
}

// TestNodesServeEveryInstance runs three nodes over one database: writes
// sent to any node are applied by the one owner (the others forward them),
// and every write acknowledged by any node is seen at once by a read on
// any other node (staleness 0).
func TestNodesServeEveryInstance(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	nodes := startNodes(t, url, 3, 2*time.Second)
	write, read := nodes[0].createInstance("shared", nil)

	for i := 0; i < 30; i++ {
		w, r := nodes[i%3], nodes[(i+1)%3]
		id := fmt.Sprintf("D-%d", i)
		want(t, w.do("PUT", "/v1/instances/shared/documents/"+id, write,
			fmt.Sprintf(`{"summary":"shared node write %d","n":%d}`, i, i)), http.StatusOK, "")
		// Read on another node right after the acknowledgement.
		want(t, r.do("GET", "/v1/instances/shared/documents/"+id, read, nil), http.StatusOK, "")
		if got := r.mustSearch("shared", read, "summary:shared", 100); got.Total != uint64(i+1) {
			t.Fatalf("after write %d on node %d, node %d finds %d documents, want %d", i, i%3, (i+1)%3, got.Total, i+1)
		}
	}
	// One owner; the two others forwarded their writes to it.
	holders := leaseHolders(t, url)
	if len(holders) != 1 {
		t.Fatalf("live instance leases: %v, want one", holders)
	}
	var forwarded float64
	for _, n := range nodes {
		forwarded += counterValue(t, n, "blindex_forwarded_writes_total", "answered")
	}
	if forwarded != 20 {
		t.Fatalf("forwarded writes: %v, want 20 (the writes sent to the two nodes that do not own the instance)", forwarded)
	}

	// Deletes through a non-owner are seen everywhere too.
	for i := 0; i < 30; i += 3 {
		want(t, nodes[(i+2)%3].do("DELETE", fmt.Sprintf("/v1/instances/shared/documents/D-%d", i), write, nil), http.StatusOK, "")
	}
	for _, n := range nodes {
		if got := n.mustSearch("shared", read, "summary:shared", 100); got.Total != 20 {
			t.Fatalf("after deletes, a node finds %d documents, want 20", got.Total)
		}
	}

	// Deleting the instance on one node: the others, which have it open,
	// find it gone (and close it, zeroing its keys); created again, every
	// node serves the new one.
	want(t, nodes[2].do("DELETE", "/v1/instances/shared", testAdminToken, nil), http.StatusOK, "")
	for _, n := range nodes {
		want(t, n.search("shared", testAdminToken, "summary:shared", 10), http.StatusNotFound, CodeNotFound)
	}
	write, _ = nodes[1].createInstance("shared", nil)
	want(t, nodes[1].do("PUT", "/v1/instances/shared/documents/new", write, `{"summary":"shared again"}`), http.StatusOK, "")
	for _, n := range nodes {
		if got := n.mustSearch("shared", testAdminToken, "summary:shared", 10); got.Total != 1 {
			t.Fatalf("the instance created again: a node finds %d documents, want 1", got.Total)
		}
	}
}

// counterValue returns a counter of a server's registry, by its one label's
// value.
func counterValue(t *testing.T, ts *testServer, name, label string) float64 {
	t.Helper()
	mfs, err := ts.srv.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestNodesDatabaseOutage stops PostgreSQL under load on two nodes: every
// failed request during the outage is a 503 with Retry-After (never a
// 500), and once the database is back both nodes serve again without a
// restart, with every acknowledged write there.
func TestNodesDatabaseOutage(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	nodes := startNodes(t, url, 2, time.Second)
	write, read := nodes[0].createInstance("outage", nil)
	want(t, nodes[0].do("PUT", "/v1/instances/outage/documents/first", write, `{"summary":"outage first"}`), http.StatusOK, "")

	type outcome struct {
		status     int
		code       string
		retryAfter string
	}
	var (
		mu       sync.Mutex
		phase    = "before"
		outcomes = map[string][]outcome{}
		acked    []string
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ts := nodes[g%2]
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var r response
				var err error
				id := fmt.Sprintf("g%d-%d", g, i)
				if g < 2 {
					r, err = ts.try("PUT", "/v1/instances/outage/documents/"+id, write, `{"summary":"outage load"}`)
				} else {
					r, err = ts.try("POST", "/v1/instances/outage/search", read, map[string]any{"query": map[string]string{"query": "summary:outage"}})
				}
				if err != nil {
					t.Errorf("request failed without an answer: %v", err)
					return
				}
				o := outcome{status: r.status, retryAfter: r.header.Get("Retry-After")}
				if r.status >= 400 {
					o.code = r.errCode(t)
				}
				mu.Lock()
				outcomes[phase] = append(outcomes[phase], o)
				if g < 2 && r.status == http.StatusOK {
					acked = append(acked, id)
				}
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	setPhase := func(p string) {
		mu.Lock()
		phase = p
		mu.Unlock()
	}
	time.Sleep(time.Second)
	setPhase("outage")
	srv.Stop(t)
	time.Sleep(3 * time.Second)
	setPhase("restarting")
	srv.Restart(t)
	// Recovery: both nodes write and search again, by themselves.
	deadline := time.Now().Add(30 * time.Second)
	for _, ts := range nodes {
		for {
			r1, err1 := ts.try("PUT", "/v1/instances/outage/documents/after-"+ts.url[len(ts.url)-5:], write, `{"summary":"outage after"}`)
			r2, err2 := ts.try("POST", "/v1/instances/outage/search", read, map[string]any{"query": map[string]string{"query": "summary:outage"}})
			if err1 == nil && err2 == nil && r1.status == http.StatusOK && r2.status == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a node did not recover within 30 s of the database's restart: %v %v / %v %v", r1, err1, r2, err2)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	setPhase("after")
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	var unavailable int
	for p, os := range outcomes {
		for _, o := range os {
			switch {
			case o.status == http.StatusOK:
			case o.status == http.StatusServiceUnavailable && o.retryAfter != "" &&
				(o.code == CodeStoreUnavailable || o.code == CodeNotOwner):
				if p == "outage" {
					unavailable++
				}
			default:
				t.Errorf("%s: HTTP %d %s (Retry-After %q); want 200, or 503 with Retry-After", p, o.status, o.code, o.retryAfter)
			}
		}
	}
	if unavailable == 0 {
		t.Fatalf("no 503 during the outage: %d requests", len(outcomes["outage"]))
	}
	for _, o := range outcomes["after"] {
		if o.status != http.StatusOK {
			t.Errorf("after recovery: HTTP %d %s", o.status, o.code)
		}
	}
	t.Logf("outage: %d requests answered 503; before %d, during %d, restarting %d, after %d requests",
		unavailable, len(outcomes["before"]), len(outcomes["outage"]), len(outcomes["restarting"]), len(outcomes["after"]))
	for _, id := range acked {
		for _, ts := range nodes {
			want(t, ts.do("GET", "/v1/instances/outage/documents/"+id, read, nil), http.StatusOK, "")
		}
	}
}

// TestNodesRevokeNow: revoke-now on one node locks the instance on another
// node within the key lease (the lock is a control record every node's
// keyring re-reads when it re-validates), and restore on one node unlocks
// it on the other by itself.
func TestNodesRevokeNow(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	home := t.TempDir()
	const lease = 2 * time.Second
	var nodes []*testServer
	for i := 0; i < 2; i++ {
		nodes = append(nodes, startServer(t, Config{Store: url, Home: home, Instance: testInstanceOptions, Lease: lease,
			RetryInterval: 250 * time.Millisecond, Nodes: NodeOptions{OwnerTTL: time.Second, Name: fmt.Sprintf("node-%d", i)}}))
	}
	write, read := nodes[0].createInstance("locked", nil)
	want(t, nodes[0].do("PUT", "/v1/instances/locked/documents/A", write, `{"summary":"revoke across nodes"}`), http.StatusOK, "")
	for _, n := range nodes {
		want(t, n.search("locked", read, "summary:revoke", 10), http.StatusOK, "")
	}

	want(t, nodes[0].do("POST", "/v1/instances/locked/revoke-now", testAdminToken, nil), http.StatusOK, "")
	want(t, nodes[0].search("locked", read, "summary:revoke", 10), http.StatusLocked, CodeInstanceLocked)
	// Every request until it locks is answered as before; it locks within
	// the lease (plus one retry interval and the request's own time).
	waitFor := func(what string, status int) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			r := nodes[1].search("locked", read, "summary:revoke", 10)
			if r.status == status {
				return time.Since(start)
			}
			if r.status != http.StatusOK && r.status != http.StatusLocked {
				t.Fatalf("%s: %s", what, r)
			}
			if time.Since(start) > lease+2*time.Second {
				t.Fatalf("%s: the other node still answers %s after %v (key lease %v)", what, r, time.Since(start), lease)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	locked := waitFor("revoke-now on node 0", http.StatusLocked)
	// Writes through the other node are refused too.
	want(t, nodes[1].do("PUT", "/v1/instances/locked/documents/B", write, `{"summary":"while locked"}`), http.StatusLocked, CodeInstanceLocked)

	want(t, nodes[0].do("POST", "/v1/instances/locked/restore", testAdminToken, nil), http.StatusOK, "")
	unlocked := waitFor("restore on node 0", http.StatusOK)
	want(t, nodes[1].do("PUT", "/v1/instances/locked/documents/B", write, `{"summary":"after restore"}`), http.StatusOK, "")
	t.Logf("key lease %v: the other node locked %v after revoke-now and unlocked %v after restore", lease, locked.Round(time.Millisecond), unlocked.Round(time.Millisecond))
}

// TestNodesRotate: a rotation and a re-encryption sent to a node that does
// not own the instance run on the owner; another node that had the
// instance open reloads its manifest (the new generation) and its state,
// and reads every document before and after.
func TestNodesRotate(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	nodes := startNodes(t, url, 2, 2*time.Second)
	write, read := nodes[0].createInstance("rot", nil)
	for i := 0; i < 10; i++ {
		want(t, nodes[0].do("PUT", fmt.Sprintf("/v1/instances/rot/documents/A-%d", i), write, `{"summary":"before rotation"}`), http.StatusOK, "")
	}
	if got := nodes[1].mustSearch("rot", read, "summary:rotation", 100); got.Total != 10 {
		t.Fatalf("node 1 before rotation: %d", got.Total)
	}
	r := nodes[1].do("POST", "/v1/instances/rot/rotate", testAdminToken, nil)
	want(t, r, http.StatusOK, "")
	for i := 0; i < 10; i++ {
		want(t, nodes[1].do("PUT", fmt.Sprintf("/v1/instances/rot/documents/B-%d", i), write, `{"summary":"after rotation"}`), http.StatusOK, "")
	}
	for _, n := range nodes {
		if got := n.mustSearch("rot", read, "summary:rotation", 100); got.Total != 20 {
			t.Fatalf("after rotation: a node finds %d, want 20", got.Total)
		}
		want(t, n.do("GET", "/v1/instances/rot/documents/A-3", read, nil), http.StatusOK, "")
	}
	want(t, nodes[1].do("POST", "/v1/instances/rot/reencrypt", testAdminToken, nil), http.StatusAccepted, "")
	deadline := time.Now().Add(30 * time.Second)
	for {
		var man struct {
			Generations []any `json:"generations"`
		}
		r := nodes[1].do("GET", "/v1/instances/rot", testAdminToken, nil)
		want(t, r, http.StatusOK, "")
		r.json(t, &man)
		if len(man.Generations) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("re-encryption did not retire the old generation: %s", r)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, n := range nodes {
		if got := n.mustSearch("rot", read, "summary:rotation", 100); got.Total != 20 {
			t.Fatalf("after re-encryption: a node finds %d, want 20", got.Total)
		}
		want(t, n.do("GET", "/v1/instances/rot/documents/A-3", read, nil), http.StatusOK, "")
	}
}

// TestNodesCatchUp: random updates and deletes through the owner, each
// followed by searches on another node, which replays the owner's log
// entries into its state (and drops the cached posting lists they touch):
// every answer agrees with a model of the documents, including the
// flushes of the memtable into runs that force a whole reload.
func TestNodesCatchUp(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	nodes := startNodes(t, url, 2, 2*time.Second)
	write, read := nodes[0].createInstance("catch", nil)
	words := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot"}
	model := map[string]map[string]bool{} // id → its words
	rng := rand.New(rand.NewPCG(1, 2))
	t.Logf("seed 1,2")
	for op := 0; op < 150; op++ {
		id := fmt.Sprintf("C-%d", rng.IntN(25))
		if rng.IntN(4) == 0 {
			r := nodes[op%2].do("DELETE", "/v1/instances/catch/documents/"+id, write, nil)
			if r.status != http.StatusOK && r.status != http.StatusNotFound {
				t.Fatalf("delete: %s", r)
			}
			delete(model, id)
		} else {
			ws := map[string]bool{}
			var text []string
			for _, w := range words {
				if rng.IntN(2) == 0 {
					ws[w] = true
					text = append(text, w)
				}
			}
			want(t, nodes[op%2].do("PUT", "/v1/instances/catch/documents/"+id, write,
				map[string]string{"summary": strings.Join(text, " ")}), http.StatusOK, "")
			model[id] = ws
		}
		reader := nodes[(op+1)%2]
		for _, w := range words[:3] {
			var n uint64
			for _, ws := range model {
				if ws[w] {
					n++
				}
			}
			if got := reader.mustSearch("catch", read, "summary:"+w, 100); got.Total != n {
				t.Fatalf("op %d: %s on the other node: %d hits, want %d", op, w, got.Total, n)
			}
		}
	}
}

// TestNodesForgedAddress: the database's operator rewrites the owner's
// advertised address to one of its own: a write reaching another node is
// not forwarded there (the address record is authenticated), and nothing
// reaches that address.
func TestNodesForgedAddress(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	nodes := startNodes(t, url, 2, 5*time.Second)
	write, _ := nodes[0].createInstance("forged", nil)
	want(t, nodes[0].do("PUT", "/v1/instances/forged/documents/A", write, `{"summary":"owned by node 0"}`), http.StatusOK, "")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var reached atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			reached.Add(1)
			c.Close()
		}
	}()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	forged := append(append([]byte{1}, make([]byte, 32)...), fmt.Sprintf(`{"v":1,"addr":"http://%s"}`, ln.Addr())...)
	tag, err := conn.Exec(ctx, "UPDATE blindex_kv SET v = $1 WHERE k = $2", forged, append([]byte{0, 'N'}, "node-0"...))
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("forging the address record: %v, %d rows", err, tag.RowsAffected())
	}
	r := nodes[1].do("PUT", "/v1/instances/forged/documents/B", write, `{"summary":"sent to node 1"}`)
	want(t, r, http.StatusInternalServerError, CodeDataCorrupt)
	if n := reached.Load(); n != 0 {
		t.Fatalf("%d connections reached the forged address", n)
	}
	// The owner itself still writes.
	want(t, nodes[0].do("PUT", "/v1/instances/forged/documents/C", write, `{"summary":"owner"}`), http.StatusOK, "")
}

// TestNodesOpenWhileWriting: a node opens an instance again and again (one
// instance open at a time, two instances in turn) while its owner writes it
// and flushes its log into runs after every batch: a load that meets log
// records the owner's flush removed is retried, never answered as corrupt.
func TestNodesOpenWhileWriting(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	home := t.TempDir()
	opts := testInstanceOptions
	opts.CompactEvery = 1
	var nodes []*testServer
	for i, maxOpen := range []int{0, 1} {
		nodes = append(nodes, startServer(t, Config{Store: url, Home: home, Instance: opts, MaxOpen: maxOpen,
			Nodes: NodeOptions{OwnerTTL: 2 * time.Second, Name: fmt.Sprintf("node-%d", i)}}))
	}
	write, read := nodes[0].createInstance("busy", nil)
	_, readOther := nodes[0].createInstance("other", nil)
	want(t, nodes[0].do("PUT", "/v1/instances/other/documents/X", testAdminToken, `{"summary":"other"}`), http.StatusOK, "")
	stop := make(chan struct{})
	done := make(chan struct{})
	var written atomic.Int64
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			r, err := nodes[0].try("PUT", fmt.Sprintf("/v1/instances/busy/documents/D-%d", i), write, `{"summary":"busy writes"}`)
			if err != nil || r.status != http.StatusOK {
				t.Errorf("write: %v %v", r, err)
				return
			}
			written.Add(1)
		}
	}()
	// Until the owner has flushed 30 batches (at most 30 s).
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; written.Load() < 30 && time.Now().Before(deadline); i++ {
		before := written.Load()
		got := nodes[1].mustSearch("busy", read, "summary:busy", 1)
		if got.Total < uint64(before) {
			t.Fatalf("search %d: %d hits, %d writes acknowledged before it started", i, got.Total, before)
		}
		nodes[1].mustSearch("other", readOther, "summary:other", 1) // closes busy on node 1
	}
	close(stop)
	<-done
	if written.Load() < 10 {
		t.Fatalf("only %d writes during the test", written.Load())
	}
}
