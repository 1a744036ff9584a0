package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/blindex/blindex/store"
)

// Owners: write ownership of many scopes, on demand
//
// Several processes may serve one database, each able to write any scope
// (in blindex: any instance), one writer per scope at a time. Owners keeps
// one process's leases of such scopes: a scope's lease is acquired when the
// process first writes it (Owned.Acquire), renewed every TTL/3 while the
// process keeps writing, and released once it has been idle for Idle, so
// that another process may take the scope at once.
//
// Each scope also has a version, in its lease row: the number of versioned
// writes (Owned.Apply) committed under it. A versioned write runs, as the
// first statement of its transaction,
//
//	UPDATE lease SET version = version + 1
//	 WHERE scope = $1 AND holder = $2 AND epoch = $3 AND expires > now() AND version = $4
//	RETURNING version
//
// and is rolled back whole unless that updated the row: it commits only
// while this process holds the scope's lease (fencing) and only when no
// other write committed since the version its caller last saw (so a write
// built on stale state is refused, never half-applied). Readers compare
// the version (Owned.Version, one round trip) with the one their in-memory
// state reflects to know whether it is stale.
//
// Owners also keep a row per live process in a node table (the store's
// table name + "_node": its name, an address for operators to read, and an
// expiry), so that whoever needs to can tell whether processes serve the
// database (Store.Nodes). The table is not authenticated: blindex trusts
// no address read from it.

// ErrStale reports a versioned write refused because its scope's version is
// not the one its caller expected, or because this process does not hold
// the scope's lease (any more): another process may have written. Nothing
// was written; the caller reloads what it read and tries again. It
// matches ErrFenced too.
var ErrStale = fmt.Errorf("%w, or the scope changed since its state was read", ErrFenced)

// OwnersOptions configures Owners. Zero values mean the defaults.
type OwnersOptions struct {
	// Holder names this process in lease and node rows: unique among the
	// processes over the database. Default "HOST:PID/" and 8 random hex
	// digits.
	Holder string
	// TTL is how long a scope's lease lasts without renewal: a killed
	// owner's scopes are taken over once it has passed. Default 15 s; at
	// least 1 s.
	TTL time.Duration
	// Idle is how long a scope may go without a write before its lease is
	// released. Default TTL.
	Idle time.Duration
}

// Owners is one process's write ownership of scopes of a Store. Create it
// with Store.Owners; stop it with Close (which releases every lease).
type Owners struct {
	s      *Store
	holder string
	ttl    time.Duration
	idle   time.Duration
	nodes  string // quoted identifier of the node table

	mu     sync.Mutex
	scopes map[string]*Owned
	addr   string // advertised address, "" for none

	stop chan struct{}
	done chan struct{}
}

// Owners creates the node table when it is missing and starts the
// background renewal of this process's leases and node row.
func (s *Store) Owners(ctx context.Context, o OwnersOptions) (*Owners, error) {
	var errs []error
	switch {
	case o.TTL == 0:
		o.TTL = DefaultLeaseTTL
	case o.TTL < time.Second:
		errs = append(errs, errors.New("OwnersOptions.TTL must be at least 1s"))
	}
	switch {
	case o.Idle == 0:
		o.Idle = o.TTL
	case o.Idle < 0:
		errs = append(errs, errors.New("OwnersOptions.Idle must not be negative"))
	}
	if len(o.Holder) > 150 {
		errs = append(errs, errors.New("OwnersOptions.Holder must be at most 150 bytes"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidOptions, errors.Join(errs...))
	}
	if o.Holder == "" {
		h, _ := os.Hostname()
		suffix := make([]byte, 4)
		rand.Read(suffix)
		o.Holder = fmt.Sprintf("%s:%d/%s", h, os.Getpid(), hex.EncodeToString(suffix))
	}
	w := &Owners{s: s, holder: o.Holder, ttl: o.TTL, idle: o.Idle, scopes: map[string]*Owned{},
		stop: make(chan struct{}), done: make(chan struct{})}
	var err error
	if w.nodes, err = s.initNodes(ctx); err != nil {
		return nil, err
	}
	if err := w.advertise(ctx); err != nil {
		return nil, err
	}
	go w.loop()
	return w, nil
}

// initNodes creates the node table when it is missing and returns its
// quoted name.
func (s *Store) initNodes(ctx context.Context) (string, error) {
	nodes := pgx.Identifier{s.opts.Table + "_node"}.Sanitize()
	create := "CREATE TABLE IF NOT EXISTS " + nodes + " (holder TEXT NOT NULL PRIMARY KEY, addr TEXT NOT NULL, expires TIMESTAMPTZ NOT NULL)"
	err := s.retry(ctx, func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, create)
		if isUniqueViolation(err) {
			return errRetry
		}
		return err
	})
	if err != nil {
		return "", wrap("create node table", err)
	}
	return nodes, nil
}

// Nodes returns the names of the processes whose Owners are live over the
// database (their node rows have not expired).
func (s *Store) Nodes(ctx context.Context) ([]string, error) {
	nodes, err := s.initNodes(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	err = s.retry(ctx, func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, "SELECT holder FROM "+nodes+" WHERE expires > now() ORDER BY holder")
		if err != nil {
			return err
		}
		names, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, s.wrap("list nodes", err)
	}
	return names, nil
}

// LeaseHolder returns the holder of scope's live lease, "" when none.
func (s *Store) LeaseHolder(ctx context.Context, scope string) (string, error) {
	var holder string
	err := s.retry(ctx, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, "SELECT holder FROM "+s.leases+" WHERE scope = $1 AND expires > now()", scope).Scan(&holder)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", s.wrap("lease holder", err)
	}
	return holder, nil
}

// Holder returns this process's name in lease and node rows.
func (w *Owners) Holder() string { return w.holder }

// TTL returns the leases' time to live.
func (w *Owners) TTL() time.Duration { return w.ttl }

// Advertise records addr (a base URL other processes can reach this one
// at) in this process's node row, for operators to read.
func (w *Owners) Advertise(ctx context.Context, addr string) error {
	w.mu.Lock()
	w.addr = addr
	w.mu.Unlock()
	return w.advertise(ctx)
}

// advertise writes or renews this process's node row (with an empty
// address until Advertise).
func (w *Owners) advertise(ctx context.Context) error {
	w.mu.Lock()
	addr := w.addr
	w.mu.Unlock()
	_, err := w.s.pool.Exec(ctx, "INSERT INTO "+w.nodes+" (holder, addr, expires) VALUES ($1, $2, now() + $3::FLOAT8 * INTERVAL '1 millisecond') "+
		"ON CONFLICT (holder) DO UPDATE SET addr = excluded.addr, expires = excluded.expires",
		w.holder, addr, float64(w.ttl.Milliseconds()))
	if err != nil {
		return w.s.wrap("advertise", err)
	}
	return nil
}

// Scope returns this process's ownership of scope (1 to 200 bytes), held
// or not. The same *Owned is returned for the same scope.
func (w *Owners) Scope(scope string) *Owned {
	w.mu.Lock()
	defer w.mu.Unlock()
	o := w.scopes[scope]
	if o == nil {
		o = &Owned{w: w, scope: scope}
		w.scopes[scope] = o
	}
	return o
}

// loop renews held leases every TTL/3 and releases those idle for Idle,
// and renews the node row, until Close.
func (w *Owners) loop() {
	defer close(w.done)
	t := time.NewTicker(w.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), w.ttl/3)
		w.advertise(ctx)
		w.mu.Lock()
		scopes := make([]*Owned, 0, len(w.scopes))
		for _, o := range w.scopes {
			scopes = append(scopes, o)
		}
		w.mu.Unlock()
		for _, o := range scopes {
			o.tick(ctx)
		}
		cancel()
	}
}

// Close stops the renewals and releases every lease and the node row.
func (w *Owners) Close() error {
	select {
	case <-w.stop:
		return nil
	default:
	}
	close(w.stop)
	<-w.done
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	w.mu.Lock()
	scopes := w.scopes
	w.scopes = map[string]*Owned{}
	w.mu.Unlock()
	var errs []error
	for _, o := range scopes {
		errs = append(errs, o.release(ctx))
	}
	if _, err := w.s.pool.Exec(ctx, "DELETE FROM "+w.nodes+" WHERE holder = $1", w.holder); err != nil && !w.s.closed.Load() {
		errs = append(errs, w.s.wrap("release node", err))
	}
	return errors.Join(errs...)
}

// Owned is one process's write ownership of one scope: a lease held or
// not, and the scope's version as this process last knew it.
type Owned struct {
	w     *Owners
	scope string

	mu sync.Mutex
	// lease is the held lease, nil when not held.
	lease *Lease
	// renewed is when the last successful acquisition or renewal was
	// sent (local clock): until renewed + TTL/2, no other process can
	// have acquired the scope.
	renewed time.Time
	// used is when the scope was last acquired or written.
	used time.Time
	// version is the scope's version as of the last acquisition or
	// versioned commit of this process; -1 when unknown (a write whose
	// outcome is unknown).
	version int64
}

// Acquire makes this process the scope's writer, unless another process
// holds a live lease (a *LeaseHeldError naming it). It returns the
// scope's version: the last one this process committed or, on a new
// acquisition, the one in the database.
func (o *Owned) Acquire(ctx context.Context) (int64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.used = time.Now()
	if o.lease != nil && o.lease.usable() == nil && o.version >= 0 && time.Since(o.renewed) < o.w.ttl/2 {
		return o.version, nil
	}
	sent := time.Now()
	l, err := o.w.s.AcquireLease(ctx, o.scope, o.w.holder, o.w.ttl)
	if err != nil {
		if errors.Is(err, ErrLeaseHeld) {
			o.lease = nil // taken over
		}
		return 0, err
	}
	o.lease, o.renewed, o.version = l, sent, l.version
	return o.version, nil
}

// Held reports whether this process holds the scope's lease and renewed it
// recently enough that no other process can have written since, and the
// version this process last knew.
func (o *Owned) Held() (int64, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	ok := o.lease != nil && o.lease.usable() == nil && o.version >= 0 && time.Since(o.renewed) < o.w.ttl/2
	return o.version, ok
}

// Holder returns the holder of the scope's live lease, "" when none.
func (o *Owned) Holder(ctx context.Context) (string, error) { return o.w.s.LeaseHolder(ctx, o.scope) }

// Version reads the scope's version in the database (0 when nothing was
// ever written under it): one round trip.
func (o *Owned) Version(ctx context.Context) (int64, error) {
	var v int64
	s := o.w.s
	err := s.retry(ctx, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, "SELECT version FROM "+s.leases+" WHERE scope = $1", o.scope).Scan(&v)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, s.wrap("version", err)
	}
	return v, nil
}

// Apply commits b only while this process holds the scope's lease and the
// scope's version is expect, and returns the new version (expect + 1). A
// refusal is ErrStale; nothing of b is written then. It does not acquire
// the lease: call Acquire first.
func (o *Owned) Apply(b *store.Batch, sync bool, expect int64) (int64, error) {
	if b.Len() == 0 {
		return expect, nil // nothing to commit, nothing changes
	}
	o.mu.Lock()
	l := o.lease
	o.used = time.Now()
	o.mu.Unlock()
	if l == nil {
		return 0, ErrStale
	}
	f := &versionFence{l: l, expect: expect}
	err := o.w.s.apply(b, sync, f)
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case err == nil:
		if o.lease == l {
			o.version = f.got
		}
		return f.got, nil
	case errors.Is(err, ErrFenced):
		// Refused: either the lease is lost or the version moved. The next
		// Acquire finds out which, in the database.
		if o.lease == l {
			o.lease = nil
		}
		return 0, ErrStale
	default:
		// The outcome is unknown (the connection may have dropped after
		// the commit): the version is no longer known.
		if o.lease == l {
			o.version = -1
		}
		return 0, err
	}
}

// Bump commits a versioned write of nothing, while this process holds the
// scope's lease: readers of the scope see that it changed (blindex bumps
// a deleted instance's version, so that other processes drop it). It
// returns the new version.
func (o *Owned) Bump(ctx context.Context) (int64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.lease == nil {
		return 0, ErrStale
	}
	l := o.lease
	var v int64
	s := o.w.s
	err := s.retry(ctx, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, "UPDATE "+s.leases+" SET version = version + 1 WHERE scope = $1 AND holder = $2 AND epoch = $3 AND expires > now() RETURNING version",
			l.scope, l.holder, l.epoch).Scan(&v)
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		o.lease = nil
		return 0, ErrStale
	case err != nil:
		o.version = -1
		return 0, s.wrap("bump version", err)
	}
	o.version = v
	return v, nil
}

// tick renews the lease, or releases it when the scope has been idle for
// Idle.
func (o *Owned) tick(ctx context.Context) {
	o.mu.Lock()
	l := o.lease
	idle := time.Since(o.used) >= o.w.idle
	o.mu.Unlock()
	if l == nil {
		return
	}
	if idle {
		o.release(ctx)
		return
	}
	sent := time.Now()
	err := l.Renew(ctx)
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case o.lease != l:
	case err == nil:
		o.renewed = sent
	case errors.Is(err, ErrFenced):
		o.lease = nil
	}
}

// release gives the scope's lease up, when held.
func (o *Owned) release(ctx context.Context) error {
	o.mu.Lock()
	l := o.lease
	o.lease = nil
	o.mu.Unlock()
	if l == nil {
		return nil
	}
	return l.Release(ctx)
}

// versionFence is the check of a versioned write (see Owners).
type versionFence struct {
	l      *Lease
	expect int64
	got    int64 // the new version, set by readCheck
}

func (f *versionFence) usable() error { return f.l.usable() }

func (f *versionFence) queueCheck(pb *pgx.Batch) {
	l := f.l
	pb.Queue("UPDATE "+l.s.leases+" SET version = version + 1 WHERE scope = $1 AND holder = $2 AND epoch = $3 AND expires > now() AND version = $4 RETURNING version",
		l.scope, l.holder, l.epoch, f.expect)
}

func (f *versionFence) readCheck(br pgx.BatchResults) error {
	err := br.QueryRow().Scan(&f.got)
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrFenced
	}
	return err
}
