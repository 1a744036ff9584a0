package server

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/blindex/blindex/index"
)

// Re-encryption job states.
const (
	jobIdle        = "idle"        // no job since the server started
	jobRunning     = "running"     //
	jobCompleted   = "completed"   // every record is under the current generation; older keys destroyed
	jobFailed      = "failed"      // stopped by an error (see error); POST again to resume
	jobInterrupted = "interrupted" // stopped by shutdown or the instance's deletion; POST again to resume
)

// job is one instance's re-encryption.
type job struct {
	mu       sync.Mutex
	state    string
	done     int
	total    int
	runs     int
	started  time.Time
	finished time.Time
	err      *apiError
	cancel   context.CancelFunc
	exited   chan struct{}
}

// jobs holds the re-encryption job of each instance.
type jobs struct {
	mu sync.Mutex
	m  map[string]*job
	wg sync.WaitGroup
}

func newJobs() *jobs { return &jobs{m: map[string]*job{}} }

func (js *jobs) get(name string) *job {
	js.mu.Lock()
	defer js.mu.Unlock()
	return js.m[name]
}

func (js *jobs) isRunning(name string) bool {
	j := js.get(name)
	if j == nil {
		return false
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.state == jobRunning
}

func (js *jobs) running() int {
	js.mu.Lock()
	all := make([]*job, 0, len(js.m))
	for _, j := range js.m {
		all = append(all, j)
	}
	js.mu.Unlock()
	n := 0
	for _, j := range all {
		j.mu.Lock()
		if j.state == jobRunning {
			n++
		}
		j.mu.Unlock()
	}
	return n
}

// cancel stops an instance's job and waits for it to stop.
func (js *jobs) cancel(name string) {
	j := js.get(name)
	if j == nil {
		return
	}
	j.mu.Lock()
	cancel, exited := j.cancel, j.exited
	j.mu.Unlock()
	if cancel != nil {
		cancel()
		<-exited
	}
}

func (js *jobs) forget(name string) {
	js.mu.Lock()
	delete(js.m, name)
	js.mu.Unlock()
}

// wait waits for every job to stop (Shutdown cancels their context first).
func (js *jobs) wait() { js.wg.Wait() }

// progressView is the answer of GET .../reencrypt.
type progressView struct {
	State       string           `json:"state"`
	Done        int              `json:"done"`
	Total       int              `json:"total"`
	Percent     float64          `json:"percent"`
	Runs        int              `json:"runs,omitempty"`
	Started     *time.Time       `json:"started,omitempty"`
	Finished    *time.Time       `json:"finished,omitempty"`
	Error       *errorDetail     `json:"error,omitempty"`
	Current     uint32           `json:"current_generation"`
	Generations []generationView `json:"generations"`
}

func (j *job) view() progressView {
	j.mu.Lock()
	defer j.mu.Unlock()
	v := progressView{State: j.state, Done: j.done, Total: j.total, Runs: j.runs}
	if j.total > 0 {
		v.Percent = float64(int(1000*float64(min(j.done, j.total))/float64(j.total))) / 10
	} else if j.state == jobCompleted {
		v.Percent = 100
	}
	if !j.started.IsZero() {
		t := j.started
		v.Started = &t
	}
	if !j.finished.IsZero() {
		t := j.finished
		v.Finished = &t
	}
	if j.err != nil {
		v.Error = &errorDetail{Code: j.err.code, Message: j.err.message}
	}
	return v
}

func (s *Server) progress(name string) (progressView, error) {
	man, err := s.manifest(name)
	if err != nil {
		return progressView{}, err
	}
	v := progressView{State: jobIdle}
	if j := s.jobs.get(name); j != nil {
		v = j.view()
	}
	g := viewOf(man)
	v.Current, v.Generations = g.Current, g.Generations
	return v, nil
}

// handleStartReencrypt starts an online re-encryption of the instance
// under its current generation and answers 202 with its progress. It is
// resumable: after a failure or an interruption, POST again and it
// continues with what is left.
func (s *Server) handleStartReencrypt(c *call) error {
	if _, err := s.manifest(c.name); err != nil {
		return err
	}
	s.jobs.mu.Lock()
	j := s.jobs.m[c.name]
	if j != nil {
		j.mu.Lock()
		running := j.state == jobRunning
		j.mu.Unlock()
		if running {
			s.jobs.mu.Unlock()
			return newErr(http.StatusConflict, CodeConflict, "a re-encryption of this instance is already running; follow it with GET /v1/instances/{name}/reencrypt")
		}
	}
	ctx, cancel := context.WithCancel(context.WithValue(s.baseCtx, serverCallKey{}, true))
	j = &job{state: jobRunning, started: time.Now().UTC(), cancel: cancel, exited: make(chan struct{})}
	s.jobs.m[c.name] = j
	s.jobs.wg.Add(1)
	s.jobs.mu.Unlock()
	name := c.name
	go func() {
		defer s.jobs.wg.Done()
		defer close(j.exited)
		defer cancel()
		s.runReencrypt(ctx, name, j)
	}()
	v, err := s.progress(c.name)
	if err != nil {
		return err
	}
	c.w.Header().Set("Location", "/v1/instances/"+c.name+"/reencrypt")
	writeJSON(c.w, http.StatusAccepted, v)
	return nil
}

func (s *Server) runReencrypt(ctx context.Context, name string, j *job) {
	s.log.Info("re-encryption started", "instance", name)
	var prior int // records done by earlier runs of this job
	var err error
	for attempt := 0; ; attempt++ {
		var in *index.Instance
		in, err = s.instance(ctx, name)
		if err != nil {
			break
		}
		j.mu.Lock()
		j.runs++
		j.mu.Unlock()
		last := 0
		first := true
		err = in.Reencrypt(ctx, func(p index.ReencryptProgress) {
			j.mu.Lock()
			if first && j.total == 0 {
				j.total = p.Total
			}
			first = false
			if p.Done > last {
				s.metrics.reencrypted.Add(float64(p.Done - last))
				last = p.Done
			}
			j.done = prior + p.Done
			j.mu.Unlock()
		})
		prior += last
		// Closed under the job (evicted from the open set): resume on a
		// fresh open. Reencrypt is resumable by design.
		if s.isClosed(err) && attempt < 100 && ctx.Err() == nil {
			continue
		}
		break
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.finished = time.Now().UTC()
	j.cancel = nil
	switch {
	case err == nil:
		j.state = jobCompleted
		j.done = max(j.done, j.total)
		s.log.Info("re-encryption completed", "instance", name, "records", j.done)
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		j.state = jobInterrupted
		j.err = newErr(http.StatusServiceUnavailable, CodeShuttingDown, "interrupted by the server's shutdown or the instance's deletion; POST again to resume where it stopped")
		s.log.Info("re-encryption interrupted", "instance", name, "done", j.done)
	default:
		j.state = jobFailed
		j.err = fromEngine(err)
		s.log.Warn("re-encryption failed", "instance", name, "done", j.done, "code", j.err.code, "error", err.Error())
	}
}

func (s *Server) handleReencryptProgress(c *call) error {
	v, err := s.progress(c.name)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, v)
	return nil
}
