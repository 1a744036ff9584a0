package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/blindex/blindex/tokenize"
)

// childSpec is what a memory-measuring child process does: index the first
// Sizes[len-1] documents of Corpus into one engine, alone, recording the
// peak RSS at each size; close, reopen, and run every query once.
type childSpec struct {
	// Mode is "" (index, as above), "search" (open the index in Dir and
	// search it: searchWork) or "server" (the server scenario: Server).
	Mode      string        `json:"mode,omitempty"`
	Server    *ServerConfig `json:"server,omitempty"`
	Engine    string        `json:"engine"`
	Corpus    string        `json:"corpus"`
	Mapping   string        `json:"mapping"`
	IDField   string        `json:"id_field"`
	Sizes     []int         `json:"sizes"`
	BatchSize int           `json:"batch_size"`
	Durable   bool          `json:"durable"`
	Seed      int64         `json:"seed"`
	Dir       string        `json:"dir"`
	Queries   []Query       `json:"queries"`
}

// childResult is what a child reports on its standard output.
type childResult struct {
	Engine      string            `json:"engine"`
	StartRSS    int64             `json:"start_rss"`
	Checkpoints []childCheckpoint `json:"checkpoints"`
	FinalPeak   int64             `json:"final_peak_rss"`
	SizeBytes   int64             `json:"size_bytes"`
	Queries     int               `json:"queries"`
	// Search and Server are the results of the other modes.
	Search *searchResultChild `json:"search,omitempty"`
	Server *ServerFigures     `json:"server,omitempty"`
}

type childCheckpoint struct {
	Docs    int     `json:"docs"`
	Seconds float64 `json:"seconds"`  // indexing time so far
	PeakRSS int64   `json:"peak_rss"` // VmHWM
}

// RunChild is the child-process side of the peak-memory measurement: it
// reads the spec file the parent wrote (see Config.ChildCommand), does the
// work with one engine and writes its result as JSON to stdout. It is meant
// to be called by a program the parent started with BLINDEX_BENCH_CHILD=1,
// never by hand.
func RunChild(ctx context.Context, specPath string, stdout io.Writer) error {
	data, err := os.ReadFile(specPath)
	if err != nil {
		return fmt.Errorf("bench: child: %w", err)
	}
	var spec childSpec
	if err := json.Unmarshal(data, &spec); err != nil {
		return fmt.Errorf("bench: child: spec %s: %w", specPath, err)
	}
	var res *childResult
	switch spec.Mode {
	case "":
		res, err = childWork(ctx, spec)
	case "search":
		res = &childResult{Engine: spec.Engine}
		res.Search, err = searchWork(ctx, spec)
	case "server":
		if spec.Server == nil {
			return fmt.Errorf("bench: child: server mode without a server configuration")
		}
		res = &childResult{}
		res.Server, err = serverWork(ctx, spec)
	default:
		err = fmt.Errorf("bench: child: unknown mode %q", spec.Mode)
	}
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(res)
}

// IsChild reports whether this process was started as a memory-measuring
// child (BLINDEX_BENCH_CHILD=1 in its environment).
func IsChild() bool { return os.Getenv(childEnv) == "1" }

// childWork does a child's work in the calling process. The peak RSS it
// reports is the process's VmHWM, so a caller measuring in-process resets it
// first.
func childWork(ctx context.Context, spec childSpec) (*childResult, error) {
	res := &childResult{Engine: spec.Engine, StartRSS: procStatus("VmRSS")}
	mappingJSON, err := os.ReadFile(spec.Mapping)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	m, err := tokenize.ParseMapping(mappingJSON)
	if err != nil {
		return nil, fmt.Errorf("bench: mapping: %w", err)
	}
	e, err := newEngine(ctx, spec.Engine, spec.Dir, m, spec.Durable)
	if err != nil {
		return nil, err
	}
	defer e.release()
	cr, err := newDocSource(spec.Corpus, spec.IDField, spec.Seed)
	if err != nil {
		return nil, err
	}
	defer cr.Close()
	var elapsed time.Duration
	n := 0
	batch := make([]doc, 0, spec.BatchSize)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		t0 := time.Now()
		err := e.index(ctx, batch)
		elapsed += time.Since(t0)
		batch = batch[:0]
		return err
	}
	for _, size := range spec.Sizes {
		for n < size {
			d, err := cr.next()
			if err != nil {
				return nil, err
			}
			d.summary = ""
			batch = append(batch, d)
			n++
			if len(batch) == spec.BatchSize {
				if err := flush(); err != nil {
					return nil, err
				}
			}
		}
		if err := flush(); err != nil {
			return nil, err
		}
		res.Checkpoints = append(res.Checkpoints, childCheckpoint{Docs: n, Seconds: elapsed.Seconds(), PeakRSS: procStatus("VmHWM")})
	}
	t0 := time.Now()
	if err := e.close(); err != nil {
		return nil, err
	}
	res.Checkpoints[len(res.Checkpoints)-1].Seconds += time.Since(t0).Seconds()
	if res.SizeBytes, _, err = dirSize(e.dataDir()); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if err := e.reopen(ctx); err != nil {
		return nil, err
	}
	for _, q := range spec.Queries {
		p, err := q.Parse()
		if err != nil {
			return nil, err
		}
		if _, err := e.search(ctx, p, 10); err == nil {
			res.Queries++
		}
	}
	res.FinalPeak = procStatus("VmHWM")
	return res, nil
}

// memory measures each engine's peak RSS, in child processes when
// Config.ChildCommand is set, else in this process.
func (r *runner) memory(ctx context.Context, workDir string, rep *Report) error {
	mem := &rep.Memory
	names := [2]string{EngineBlindex, EngineBleve}
	mem.Method = "child"
	if len(r.cfg.ChildCommand) == 0 {
		mem.Method = "in-process"
		if !resetPeakRSS() || procStatus("VmHWM") == 0 {
			mem.Method = "unavailable"
			rep.Notes = append(rep.Notes, "peak memory not measured: /proc/self/clear_refs or VmHWM unavailable; set Config.ChildCommand")
			return nil
		}
	}
	// bleve first; each engine runs alone, so the order does not matter.
	for _, i := range [2]int{1, 0} {
		if r.cfg.skips(PhaseMemory + "-" + names[i]) {
			continue
		}
		spec := childSpec{
			Engine: names[i], Corpus: r.cfg.Corpus, Mapping: r.cfg.Mapping, IDField: r.cfg.IDField,
			Sizes: r.cfg.Sizes, BatchSize: r.cfg.BatchSize, Durable: r.cfg.Durable, Seed: r.cfg.Seed,
			Dir: filepath.Join(workDir, "mem-"+names[i]), Queries: r.lastQueries,
		}
		r.logf("peak memory: %s alone (%s), %d documents", names[i], mem.Method, spec.Sizes[len(spec.Sizes)-1])
		var err error
		if mem.Method == "child" {
			mem.Children[i], err = r.runChildProcess(ctx, workDir, spec)
		} else {
			runtime.GC()
			debug.FreeOSMemory()
			resetPeakRSS()
			mem.Children[i], err = childWork(ctx, spec)
		}
		if err != nil {
			return fmt.Errorf("bench: peak memory of %s: %w", names[i], err)
		}
		os.RemoveAll(spec.Dir)
	}
	return mem.derive()
}

// derive computes the figures from the children's results when both
// engines have one.
func (mem *Memory) derive() error {
	bx, bl := mem.Children[0], mem.Children[1]
	if bx == nil || bl == nil {
		return nil
	}
	mb := func(b int64) float64 { return float64(b) / (1 << 20) }
	if len(bx.Checkpoints) != len(bl.Checkpoints) {
		return fmt.Errorf("bench: internal error: children reported %d and %d checkpoints", len(bx.Checkpoints), len(bl.Checkpoints))
	}
	mem.Checkpoints = nil
	for k := range bx.Checkpoints {
		a, b := bx.Checkpoints[k], bl.Checkpoints[k]
		mem.Checkpoints = append(mem.Checkpoints, MemCheckpoint{
			Docs:             a.Docs,
			PeakMB:           pair(mb(a.PeakRSS), mb(b.PeakRSS)),
			PeakAboveStartMB: pair(mb(a.PeakRSS-bx.StartRSS), mb(b.PeakRSS-bl.StartRSS)),
			DocsPerSec:       pair(float64(a.Docs)/a.Seconds, float64(b.Docs)/b.Seconds),
			Seconds:          pair(a.Seconds, b.Seconds),
		})
	}
	mem.FinalPeakMB = pair(mb(bx.FinalPeak), mb(bl.FinalPeak))
	mem.FinalAboveStartMB = pair(mb(bx.FinalPeak-bx.StartRSS), mb(bl.FinalPeak-bl.StartRSS))
	mem.StartMB = pair(mb(bx.StartRSS), mb(bl.StartRSS))
	mem.SizeMB = pair(float64(bx.SizeBytes)/1e6, float64(bl.SizeBytes)/1e6)
	return nil
}

// runChildProcess runs Config.ChildCommand with the spec and decodes its
// result.
func (r *runner) runChildProcess(ctx context.Context, workDir string, spec childSpec) (*childResult, error) {
	data, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	specPath := filepath.Join(workDir, "child-"+spec.Mode+spec.Engine+".json")
	if err := os.WriteFile(specPath, data, 0o600); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	args := append(append([]string{}, r.cfg.ChildCommand[1:]...), specPath)
	cmd := exec.CommandContext(ctx, r.cfg.ChildCommand[0], args...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = r.cfg.Log
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("bench: child %v: %w", cmd.Args, err)
	}
	var res childResult
	// The result is the last line (a test binary may print more).
	lines := bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n"))
	if err := json.Unmarshal(lines[len(lines)-1], &res); err != nil {
		return nil, fmt.Errorf("bench: child %v: bad result: %w", cmd.Args, err)
	}
	return &res, nil
}
