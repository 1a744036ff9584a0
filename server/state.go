package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/blindex/blindex/index"
	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/tenancy"
)

// Key states, as in tenancy.InstanceStatus.State.
const (
	stateOK       = "ok"
	stateDegraded = "degraded"
	stateLocked   = "locked"
)

// groupLocal is the key group of every instance that is not BYOK: they all
// share the local provider's keyring. A BYOK instance's group is "byok:" and
// its organisation: one configuration, one keyring.
const groupLocal = "local"

func groupOf(m index.Meta) string {
	if m.BYOK {
		return "byok:" + m.Org
	}
	return groupLocal
}

// groups tracks which keyring each instance uses, so that the state of
// every instance can be reported with one status call per keyring rather
// than one per instance (a server holds thousands of instances).
type groups struct {
	mu      sync.Mutex
	of      map[string]string              // instance → group
	members map[string]map[string]struct{} // group → instances
}

func loadGroups(cat *tenancy.Catalog) (*groups, error) {
	g := &groups{of: map[string]string{}, members: map[string]map[string]struct{}{}}
	names, err := cat.Instances()
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		man, err := cat.Manifest(n)
		if err != nil {
			return nil, err
		}
		g.add(n, man.Meta)
	}
	return g, nil
}

func (g *groups) add(name string, m index.Meta) {
	g.mu.Lock()
	defer g.mu.Unlock()
	grp := groupOf(m)
	g.of[name] = grp
	if g.members[grp] == nil {
		g.members[grp] = map[string]struct{}{}
	}
	g.members[grp][name] = struct{}{}
}

// ensure adds an instance created without the server (through Catalog)
// when the server first opens it.
func (g *groups) ensure(name string, in *index.Instance) {
	g.mu.Lock()
	_, ok := g.of[name]
	g.mu.Unlock()
	if !ok {
		g.add(name, in.Manifest().Meta)
	}
}

func (g *groups) remove(name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	grp, ok := g.of[name]
	if !ok {
		return
	}
	delete(g.of, name)
	delete(g.members[grp], name)
	if len(g.members[grp]) == 0 {
		delete(g.members, grp)
	}
}

func (g *groups) total() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.of)
}

// size returns how many instances share name's keyring.
func (g *groups) size(name string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.members[g.of[name]])
}

// groupState is one keyring's state and how many instances it covers.
type groupState struct {
	group     string
	instances int
	state     string
	reason    string
}

// groupStates asks each keyring for its state, through one of its
// instances.
func (s *Server) groupStates(ctx context.Context) []groupState {
	s.groups.mu.Lock()
	type rep struct {
		group, name string
		n           int
	}
	var reps []rep
	for grp, ms := range s.groups.members {
		for n := range ms {
			reps = append(reps, rep{grp, n, len(ms)})
			break
		}
	}
	s.groups.mu.Unlock()
	out := make([]groupState, 0, len(reps))
	for _, r := range reps {
		st, err := s.cat.Status(ctx, r.name)
		gs := groupState{group: r.group, instances: r.n, state: st.State, reason: st.Reason}
		if errors.Is(err, index.ErrNotFound) {
			// Deleted while a request still held it open: forget it;
			// its group is reported at the next call.
			s.groups.remove(r.name)
			continue
		}
		if err != nil {
			// The representative was deleted meanwhile, or the
			// configuration cannot be read: report the group as
			// degraded rather than guess.
			gs.state, gs.reason = stateDegraded, "status unavailable"
		}
		out = append(out, gs)
	}
	return out
}

// stateCache bounds how long health checks and scrapes wait for key
// states. Catalog.Status takes the catalog's lock, which an instance being
// opened holds across its provider calls (KMS, with retries): a hanging KMS
// must not hang /readyz or /metrics. One computation runs at a time; its
// result is reused for 250ms; a caller that cannot wait gets the last
// result, marked stale.
type stateCache struct {
	mu      sync.Mutex
	last    []groupState
	at      time.Time
	running chan struct{} // closed when the running computation ends; nil if none
}

// cachedGroupStates returns the key states, waiting at most wait for a
// fresh computation. fresh is false when it returns an older result (or
// none) because the computation did not finish in time.
func (s *Server) cachedGroupStates(wait time.Duration) (states []groupState, fresh bool) {
	c := &s.states
	c.mu.Lock()
	if !c.at.IsZero() && time.Since(c.at) < 250*time.Millisecond {
		defer c.mu.Unlock()
		return c.last, true
	}
	ch := c.running
	if ch == nil {
		ch = make(chan struct{})
		c.running = ch
		go func() {
			ctx, cancel := context.WithTimeout(s.baseCtx, time.Minute)
			defer cancel()
			st := s.groupStates(ctx)
			c.mu.Lock()
			c.last, c.at, c.running = st, time.Now(), nil
			c.mu.Unlock()
			close(ch)
		}()
	}
	c.mu.Unlock()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ch:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.last, true
	case <-t.C:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.last, false
	}
}

// configStates counts the BYOK configurations (keyrings with at least one
// instance) by state.
func (s *Server) configStates(wait time.Duration) (map[string]int, bool) {
	out := map[string]int{}
	states, fresh := s.cachedGroupStates(wait)
	for _, g := range states {
		if g.group != groupLocal {
			out[g.state]++
		}
	}
	return out, fresh
}

// negCache remembers, for a short while, the instances whose open failed
// because their key is revoked, so that a client hammering a locked
// instance that is not open does not turn each request into a KMS call.
// Restore clears it.
type negCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]time.Time
}

func newNegCache(ttl time.Duration) *negCache {
	return &negCache{ttl: ttl, m: map[string]time.Time{}}
}

func (n *negCache) locked(name string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	until, ok := n.m[name]
	if ok && time.Now().After(until) {
		delete(n.m, name)
		return false
	}
	return ok
}

func (n *negCache) put(name string) {
	n.mu.Lock()
	n.m[name] = time.Now().Add(n.ttl)
	n.mu.Unlock()
}

func (n *negCache) forget(name string) {
	n.mu.Lock()
	delete(n.m, name)
	n.mu.Unlock()
}

func (n *negCache) clear() {
	n.mu.Lock()
	clear(n.m)
	n.mu.Unlock()
}

// docCounts keeps the last known document count of every instance the
// server has written to or opened for a count since it started; their sum
// is the blindex_documents gauge.
type docCounts struct {
	mu sync.Mutex
	m  map[string]uint64
}

func newDocCounts() *docCounts { return &docCounts{m: map[string]uint64{}} }

func (d *docCounts) set(name string, n uint64) {
	d.mu.Lock()
	d.m[name] = n
	d.mu.Unlock()
}

func (d *docCounts) remove(name string) {
	d.mu.Lock()
	delete(d.m, name)
	d.mu.Unlock()
}

func (d *docCounts) sum() float64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var t uint64
	for _, n := range d.m {
		t += n
	}
	return float64(t)
}

// errNegLocked is what a request to an instance in the negative cache gets.
var errNegLocked = fmt.Errorf("server: instance recently failed to open: %w", keys.ErrKeyRevoked)

// instance returns the open instance name, opening it if needed.
func (s *Server) instance(ctx context.Context, name string) (*index.Instance, error) {
	if s.neg.locked(name) {
		return nil, errNegLocked
	}
	in, err := s.cat.Instance(ctx, name)
	if err == nil {
		// Another node may have written it (nodes.go).
		_, err = in.Refresh(ctx)
		if errors.Is(err, index.ErrNotFound) {
			// Deleted by another node (and maybe created again): its keys
			// are zeroed here too, and what the store holds now is opened.
			s.cat.Drop(name, in)
			if in, err = s.cat.Instance(ctx, name); err == nil {
				_, err = in.Refresh(ctx)
			}
		}
	}
	switch {
	case err == nil:
		s.groups.ensure(name, in)
		return in, nil
	case errors.Is(err, index.ErrNotFound):
		return nil, errInstanceNotFound(name)
	case errors.Is(err, keys.ErrKeyRevoked):
		s.neg.put(name)
	}
	return nil, err
}

// withInstance runs fn on the call's instance. When the instance is closed
// under the call (the least recently used instance is closed when more than
// MaxOpen are open), nothing of that attempt was applied, and it is retried
// on a fresh open.
func (s *Server) withInstance(c *call, fn func(in *index.Instance) error) error {
	for attempt := 0; ; attempt++ {
		in, err := s.instance(c.ctx, c.name)
		if err == nil && c.p.prefix != nil {
			// The token belongs to an earlier instance of the same name.
			if man := in.Manifest(); !bytes.Equal(man.Prefix, c.p.prefix) {
				return errInstanceNotFound(c.name)
			}
		}
		if err == nil {
			err = fn(in)
		}
		if s.isClosed(err) && attempt < 8 {
			continue
		}
		if in != nil && s.retryShared(c, in, err) && attempt < 3 {
			continue
		}
		return err
	}
}
