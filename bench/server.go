package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/blindex/blindex/index"
	"github.com/blindex/blindex/server"
	"github.com/blindex/blindex/tokenize"
)

// ServerConfig configures the server scenario: one `blindex serve` server
// (package server, in its own process, on loopback) holding many small
// instances and a few large ones, with at most MaxOpen open at once.
type ServerConfig struct {
	// Small is the number of small instances. Default 10,000; 60 when
	// Short; negative skips the scenario.
	Small int `json:"small"`
	// SmallDocs is the number of documents of each small instance.
	// Default 3.
	SmallDocs int `json:"small_docs"`
	// Large are the sizes of the large instances, in documents. Default:
	// the run's largest size and a quarter of it; [300] when Short.
	Large []int `json:"large"`
	// MaxOpen is the server's Config.MaxOpen: how many instances are open
	// at once. Default 64; 16 when Short.
	MaxOpen int `json:"max_open"`
	// CacheBytes is the server's cache budget, shared by every instance
	// (server.Config.CacheBytes). Default 256 MiB, the server's.
	CacheBytes int64 `json:"cache_bytes"`
	// Probes is how many times each request kind is measured. Default 5;
	// 3 when Short.
	Probes int `json:"probes"`
	// Docs, Mapping, IDField, Seed and BatchSize come from the run's
	// Config (filled in by Run).
	Corpus    string `json:"corpus"`
	Mapping   string `json:"mapping"`
	IDField   string `json:"id_field"`
	Seed      int64  `json:"seed"`
	BatchSize int    `json:"batch_size"`
	Query     string `json:"query"` // a query-string query every probe runs
}

func (c ServerConfig) withDefaults(short bool, largest int) ServerConfig {
	if c.Small == 0 {
		c.Small = pick(short, 60, 10000)
	}
	if c.SmallDocs == 0 {
		c.SmallDocs = 3
	}
	if len(c.Large) == 0 {
		if short {
			c.Large = []int{300}
		} else {
			c.Large = []int{largest, max(1, largest/4)}
		}
	}
	if c.MaxOpen == 0 {
		c.MaxOpen = pick(short, 16, 64)
	}
	if c.CacheBytes == 0 {
		c.CacheBytes = 256 << 20
	}
	if c.Probes == 0 {
		c.Probes = pick(short, 3, 5)
	}
	return c
}

func (c ServerConfig) check() []error {
	var errs []error
	if c.Small < 0 {
		return nil // skipped
	}
	if c.Small <= c.MaxOpen {
		errs = append(errs, fmt.Errorf("bench: server: %d small instances cannot evict anything with MaxOpen %d", c.Small, c.MaxOpen))
	}
	if c.SmallDocs < 0 || c.MaxOpen < 0 || c.CacheBytes < 0 || c.Probes < 0 {
		errs = append(errs, fmt.Errorf("bench: server: small docs, max open, cache bytes and probes must be positive"))
	}
	for _, n := range c.Large {
		if n <= 0 {
			errs = append(errs, fmt.Errorf("bench: server: large instance size %d must be positive", n))
		}
	}
	return errs
}

// ServerFigures are the server scenario's figures (blindex only: bleve has
// no server).
type ServerFigures struct {
	Config ServerConfig `json:"config"`
	// CreateSeconds is the time to create (and fill) the small instances
	// through the catalog; CreateMsEach the same per instance.
	CreateSeconds float64 `json:"create_seconds"`
	CreateMsEach  float64 `json:"create_ms_each"`
	// RSS of the server process (MiB): after creating everything, after
	// the probes, and its peak (VmHWM) over the whole scenario, indexing
	// the large instances included; PeakServingMB is the peak from the
	// first probe on (VmHWM reset after creation).
	RSSAfterCreateMB float64 `json:"rss_after_create_mb"`
	RSSAfterProbesMB float64 `json:"rss_after_probes_mb"`
	PeakMB           float64 `json:"peak_mb"`
	PeakServingMB    float64 `json:"peak_serving_mb"`
	// Large has one entry per large instance; Small the small ones.
	Large []ServerProbe `json:"large"`
	Small ServerProbe   `json:"small"`
	// Budget says what bounds the server's memory.
	Budget string `json:"budget"`
	// Seconds is the whole scenario's wall time.
	Seconds float64 `json:"seconds"`
}

// ServerProbe is the latency of one search request over HTTP to an
// instance while it is open (Hot) and right after the server evicted it
// (Evicted: MaxOpen other instances were requested since).
type ServerProbe struct {
	Docs         int     `json:"docs"`
	IndexSeconds float64 `json:"index_seconds,omitempty"`
	Hot          Stats   `json:"hot"`
	Evicted      Stats   `json:"evicted"`
}

const serverBudget = "server.Config.MaxOpen bounds how many instances are open (a count) and server.Config.CacheBytes the one cache of decrypted pages they share (bytes); an instance's memtable (2 MiB at most) is flushed after its idle merge (2 s without a write)"

// serverWork runs the server scenario in this (child) process.
func serverWork(ctx context.Context, spec childSpec) (*ServerFigures, error) {
	start := time.Now()
	c := *spec.Server
	f := &ServerFigures{Config: c, Budget: serverBudget}
	mappingJSON, err := os.ReadFile(c.Mapping)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	m, err := tokenize.ParseMapping(mappingJSON)
	if err != nil {
		return nil, fmt.Errorf("bench: mapping: %w", err)
	}
	const token = "bench-admin-token-0123456789"
	srv, err := server.Open(ctx, server.Config{
		Data: filepath.Join(spec.Dir, "data"), Home: filepath.Join(spec.Dir, "home"),
		AdminTokens: []string{token}, MaxOpen: c.MaxOpen,
		Instance: index.Options{NoSync: true}, CacheBytes: c.CacheBytes,
	})
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: server: %w", err)
	}
	go srv.Serve(ln)
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	client := &http.Client{Timeout: 5 * time.Minute}
	base := "http://" + ln.Addr().String()
	body, err := json.Marshal(map[string]any{"query": map[string]string{"query": c.Query}, "size": 10})
	if err != nil {
		return nil, err
	}
	search := func(name string) (time.Duration, error) {
		req, err := http.NewRequestWithContext(ctx, "POST", base+"/v1/instances/"+name+"/search", bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, fmt.Errorf("bench: server: search: %w", err)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		d := time.Since(t0)
		if err != nil {
			return 0, fmt.Errorf("bench: server: search: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("bench: server: search: HTTP %d", resp.StatusCode)
		}
		return d, nil
	}

	src, err := newDocSource(c.Corpus, c.IDField, c.Seed)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	fill := func(in *index.Instance, n int) error {
		batch := make([]index.Document, 0, c.BatchSize)
		for i := 0; i < n; i++ {
			d, err := src.next()
			if err != nil {
				return err
			}
			batch = append(batch, index.Document{ID: d.id, Body: d.body})
			if len(batch) == c.BatchSize || i == n-1 {
				if err := in.Index(ctx, batch...); err != nil {
					return err
				}
				batch = batch[:0]
			}
		}
		return nil
	}
	cat := srv.Catalog()
	for i, n := range c.Large {
		t0 := time.Now()
		in, err := cat.CreateInstance(ctx, fmt.Sprintf("large-%d", i), index.Meta{Product: "software"}, m)
		if err != nil {
			return nil, err
		}
		if err := fill(in, n); err != nil {
			return nil, fmt.Errorf("bench: server: large instance %d: %w", i, err)
		}
		f.Large = append(f.Large, ServerProbe{Docs: n, IndexSeconds: time.Since(t0).Seconds()})
	}
	t0 := time.Now()
	for i := 0; i < c.Small; i++ {
		in, err := cat.CreateInstance(ctx, fmt.Sprintf("small-%05d", i), index.Meta{Product: "software"}, m)
		if err != nil {
			return nil, err
		}
		if err := fill(in, c.SmallDocs); err != nil {
			return nil, fmt.Errorf("bench: server: small instance %d: %w", i, err)
		}
	}
	f.CreateSeconds = time.Since(t0).Seconds()
	f.CreateMsEach = 1000 * f.CreateSeconds / float64(max(1, c.Small))
	f.RSSAfterCreateMB = float64(procStatus("VmRSS")) / (1 << 20)
	f.PeakMB = float64(procStatus("VmHWM")) / (1 << 20)
	resetPeakRSS()

	rng := rand.New(rand.NewPCG(uint64(c.Seed), 0x736572766572))
	// evict requests MaxOpen distinct small instances other than skip, so
	// that every instance requested before them is closed.
	evict := func(skip string) error {
		for _, k := range rng.Perm(c.Small)[:c.MaxOpen+1] {
			name := fmt.Sprintf("small-%05d", k)
			if name == skip {
				continue
			}
			if _, err := search(name); err != nil {
				return err
			}
		}
		return nil
	}
	probe := func(name string, p *ServerProbe) error {
		var hot, evicted latencies
		for k := 0; k < c.Probes; k++ {
			if err := evict(name); err != nil {
				return err
			}
			d, err := search(name) // evicted: opens it
			if err != nil {
				return err
			}
			evicted = append(evicted, d)
			if d, err = search(name); err != nil { // open now
				return err
			}
			hot = append(hot, d)
		}
		p.Hot, p.Evicted = hot.stats(), evicted.stats()
		return nil
	}
	for i := range f.Large {
		if err := probe(fmt.Sprintf("large-%d", i), &f.Large[i]); err != nil {
			return nil, err
		}
	}
	f.Small.Docs = c.SmallDocs
	if err := probe(fmt.Sprintf("small-%05d", rng.IntN(c.Small)), &f.Small); err != nil {
		return nil, err
	}
	f.RSSAfterProbesMB = float64(procStatus("VmRSS")) / (1 << 20)
	f.PeakServingMB = float64(procStatus("VmHWM")) / (1 << 20)
	f.PeakMB = max(f.PeakMB, f.PeakServingMB)
	f.Seconds = time.Since(start).Seconds()
	return f, nil
}

// serverScenario runs the server scenario in a child process.
func (r *runner) serverScenario(ctx context.Context, workDir string, rep *Report) error {
	c := r.cfg.Server
	if c.Small < 0 {
		return nil
	}
	if len(r.cfg.ChildCommand) == 0 {
		rep.Notes = append(rep.Notes, "server scenario not run: it needs a child process (Config.ChildCommand)")
		return nil
	}
	c.Corpus, c.Mapping, c.IDField, c.Seed, c.BatchSize = r.cfg.Corpus, r.cfg.Mapping, r.cfg.IDField, r.cfg.Seed, r.cfg.BatchSize
	c.Query = "summary:error"
	for _, q := range r.lastQueries {
		if q.Class == ClassTermMedium && !q.Match {
			c.Query = q.Text
			break
		}
	}
	r.logf("server scenario: %d small instances of %d documents, large ones of %v documents, MaxOpen %d", c.Small, c.SmallDocs, c.Large, c.MaxOpen)
	dir := filepath.Join(workDir, "server")
	res, err := r.runChildProcess(ctx, workDir, childSpec{Mode: "server", Server: &c, Dir: dir})
	os.RemoveAll(dir)
	if err != nil {
		return fmt.Errorf("bench: server scenario: %w", err)
	}
	if res.Server == nil {
		return fmt.Errorf("bench: server scenario: the child reported no figures")
	}
	rep.Server = res.Server
	return nil
}
