package server

import (
	"context"
	"sync"
)

// budget is a weighted semaphore over bytes: the document bytes being
// analysed at once across the server (Limits.MaxAnalysisBytes).
type budget struct {
	mu    sync.Mutex
	total int64
	free  int64
	freed chan struct{} // closed, and replaced, whenever bytes are released
}

func newBudget(total int64) *budget {
	return &budget{total: total, free: total, freed: make(chan struct{})}
}

// acquire takes n bytes (at most the whole budget), waiting for room until
// ctx ends.
func (b *budget) acquire(ctx context.Context, n int64) error {
	n = min(n, b.total)
	for {
		b.mu.Lock()
		if b.free >= n {
			b.free -= n
			b.mu.Unlock()
			return nil
		}
		ch := b.freed
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (b *budget) release(n int64) {
	n = min(n, b.total)
	b.mu.Lock()
	b.free += n
	close(b.freed)
	b.freed = make(chan struct{})
	b.mu.Unlock()
}

// perToken counts the requests and writes each token runs at once
// (Limits.MaxInFlightPerToken, Limits.MaxWritesPerToken).
type perToken struct {
	mu     sync.Mutex
	active map[string]int
	writes map[string]int
}

func newPerToken() *perToken {
	return &perToken{active: map[string]int{}, writes: map[string]int{}}
}

// enter counts a request of token key, a write when write is set. It
// returns false, counting nothing, when the token is at a limit, and
// whether the write limit was the one reached.
func (p *perToken) enter(key string, write bool, maxActive, maxWrites int) (ok, writeLimit bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.active[key] >= maxActive {
		return false, false
	}
	if write && p.writes[key] >= maxWrites {
		return false, true
	}
	p.active[key]++
	if write {
		p.writes[key]++
	}
	return true, false
}

func (p *perToken) leave(key string, write bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.active[key]--; p.active[key] <= 0 {
		delete(p.active, key)
	}
	if write {
		if p.writes[key]--; p.writes[key] <= 0 {
			delete(p.writes, key)
		}
	}
}
