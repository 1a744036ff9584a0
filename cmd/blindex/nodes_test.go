package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/jackc/pgx/v5"

	"github.com/blindex/blindex/client"
	"github.com/blindex/blindex/store/postgres/pgtest"
)

// node is one `blindex serve` process of TestNodesKillOwner.
type node struct {
	addr string
	cmd  *exec.Cmd
	log  *os.File
}

// TestNodesKillOwner runs three `blindex serve` processes over one
// PostgreSQL database, with concurrent writes and searches through the Go
// client (failover across the nodes), and kills the instance's owner with
// SIGKILL 20 times (a new process takes the killed one's place each time).
// No acknowledged write is lost, none is duplicated, `blindex check` is
// clean, and the time from each kill to the next acknowledged write is
// reported (the target is the ownership lease + 1 s).
func TestNodesKillOwner(t *testing.T) {
	if testing.Short() {
		t.Skip("kills server processes for about a minute")
	}
	const (
		cycles   = 20
		ownerTTL = time.Second
	)
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "blindex")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	home := filepath.Join(tmp, "home")

	start := func(addr string, i int) *node {
		t.Helper()
		lf, err := os.Create(filepath.Join(tmp, fmt.Sprintf("node-%d.log", i)))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "serve", "--store", url, "--addr", addr, "--owner-ttl", ownerTTL.String(),
			"--audit-log", "", "--log-level", "warn")
		cmd.Env = append(os.Environ(), "BLINDEX_HOME="+home)
		cmd.Stdout, cmd.Stderr = lf, lf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		n := &node{addr: addr, cmd: cmd, log: lf}
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := http.Get("http://" + addr + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return n
				}
			}
			if time.Now().After(deadline) {
				b, _ := os.ReadFile(lf.Name())
				t.Fatalf("node %s not ready: %v\n%s", addr, err, b)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	var nodes []*node
	var urls []string
	for i := 0; i < 3; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		nodes = append(nodes, start(addr, i))
		urls = append(urls, "http://"+addr)
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.cmd.Process.Kill()
			n.cmd.Wait()
			n.log.Close()
		}
	})

	resp, err := http.Post(urls[0]+"/v1/instances", "application/json", strings.NewReader(`{"name":"kill"}`))
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create instance: %v %v", resp, err)
	}
	resp.Body.Close()
	cl, err := client.New(client.Options{Nodes: urls, MaxAttempts: 40, Backoff: 50 * time.Millisecond, MaxBackoff: 250 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}

	// The owner: the PID in the holder of the instance's live lease.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	killedPIDs := map[string]bool{}
	owner := func() int {
		var holder string
		err := conn.QueryRow(ctx, "SELECT holder FROM blindex_kv_lease WHERE scope LIKE 'instance/%' AND expires > now()").Scan(&holder)
		if errors.Is(err, pgx.ErrNoRows) {
			return -1
		}
		if err != nil {
			t.Fatal(err)
		}
		// HOST:PID/random
		_, rest, _ := strings.Cut(holder, ":")
		pid, _, _ := strings.Cut(rest, "/")
		for i, n := range nodes {
			if strconv.Itoa(n.cmd.Process.Pid) == pid {
				return i
			}
		}
		if killedPIDs[pid] {
			// A killed node's lease that has not run out yet: an
			// acknowledgement it sent just before the kill can end a
			// cycle before its lease passes.
			return -1
		}
		t.Fatalf("lease holder %q is none of the nodes", holder)
		return -1
	}

	var (
		mu        sync.Mutex
		acked     = map[string]bool{}
		attempted = map[string]bool{}
		lastAck   time.Time
		ackTimes  []time.Time
		writeErrs []error
		searches  int
		searchErr []error
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("w%d-%d", g, i)
				mu.Lock()
				attempted[id] = true
				mu.Unlock()
				err := cl.Put(ctx, "kill", id, []byte(fmt.Sprintf(`{"summary":"killed owner write %d","writer":%d}`, i, g)))
				mu.Lock()
				if err == nil {
					acked[id] = true
					lastAck = time.Now()
					ackTimes = append(ackTimes, lastAck)
				} else {
					writeErrs = append(writeErrs, err)
				}
				mu.Unlock()
			}
		}()
	}
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, err := cl.Search(ctx, "kill", bleve.NewSearchRequest(bleve.NewMatchQuery("killed")))
				mu.Lock()
				searches++
				if err != nil {
					searchErr = append(searchErr, err)
				}
				mu.Unlock()
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}

	var takeovers []time.Duration
	for c := 0; c < cycles; c++ {
		// Let writes run, then find the owner.
		time.Sleep(700 * time.Millisecond)
		o := owner()
		for tries := 0; o < 0 && tries < 50; tries++ {
			time.Sleep(100 * time.Millisecond)
			o = owner()
		}
		if o < 0 {
			t.Fatalf("cycle %d: no node owns the instance while writes run", c)
		}
		killed := time.Now()
		killedPIDs[strconv.Itoa(nodes[o].cmd.Process.Pid)] = true
		nodes[o].cmd.Process.Signal(syscall.SIGKILL)
		nodes[o].cmd.Wait()
		nodes[o].log.Close()
		// Writes resume on another node: the first acknowledgement after
		// the kill.
		deadline := killed.Add(30 * time.Second)
		for {
			mu.Lock()
			var first time.Time
			for i := len(ackTimes) - 1; i >= 0 && ackTimes[i].After(killed); i-- {
				first = ackTimes[i]
			}
			mu.Unlock()
			if !first.IsZero() {
				takeovers = append(takeovers, first.Sub(killed))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cycle %d: no write acknowledged within 30 s of killing the owner", c)
			}
			time.Sleep(10 * time.Millisecond)
		}
		nodes[o] = start(nodes[o].addr, 3+c)
	}
	close(stop)
	wg.Wait()

	// Every acknowledged write is there, once.
	mu.Lock()
	defer mu.Unlock()
	if len(acked) == 0 {
		t.Fatal("no write acknowledged")
	}
	for id := range acked {
		if _, err := cl.Get(ctx, "kill", id); err != nil {
			t.Errorf("acknowledged write %s lost: %v", id, err)
		}
	}
	req := bleve.NewSearchRequestOptions(bleve.NewMatchAllQuery(), len(attempted)+10, 0, false)
	res, err := cl.Search(ctx, "kill", req)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, h := range res.Hits {
		if seen[h.ID] {
			t.Errorf("document %s found twice", h.ID)
		}
		seen[h.ID] = true
		if !attempted[h.ID] {
			t.Errorf("document %s was never written", h.ID)
		}
	}
	if int(res.Total) != len(seen) || len(seen) < len(acked) || len(seen) > len(attempted) {
		t.Errorf("total %d, distinct %d, acknowledged %d, attempted %d", res.Total, len(seen), len(acked), len(attempted))
	}
	for _, n := range nodes {
		n.cmd.Process.Signal(syscall.SIGTERM)
		n.cmd.Wait()
	}
	t.Setenv("BLINDEX_HOME", home)
	// The last killed node's entry passes after the owner TTL.
	for start := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		r := blindex(t, "", "check", "--store", url, "--instance", "kill")
		if r.code == 0 {
			break
		}
		if !strings.Contains(r.stderr, "serve node(s)") || time.Since(start) > 10*time.Second {
			t.Errorf("check after the kills: %v", r)
			break
		}
	}

	slices.Sort(takeovers)
	t.Logf("%d kills of the owner (owner TTL %v): writes resumed after p50 %v, max %v; %d writes acknowledged, %d failed after the client's retries; %d searches, %d failed",
		cycles, ownerTTL, takeovers[len(takeovers)/2].Round(time.Millisecond), takeovers[len(takeovers)-1].Round(time.Millisecond),
		len(acked), len(writeErrs), searches, len(searchErr))
	if len(searchErr) > 0 {
		t.Logf("first failed search: %v", searchErr[0])
	}
	if len(writeErrs) > 0 {
		t.Logf("first failed write: %v", writeErrs[0])
	}
}
