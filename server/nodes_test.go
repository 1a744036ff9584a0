package server

import (
	"context"
	"fmt"
	"net/http"
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
