package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/blindex/blindex/store"
)

// Leases and fencing
//
// A lease is a row of the lease table (the store's table name + "_lease"):
// a scope, its holder, an expiry on the database's clock and an epoch that
// grows with every acquisition. A Store acquires a scope's lease when it
// is free or expired; a fenced write carries, as the first statement of
// its transaction,
//
//	UPDATE lease SET holder = holder WHERE scope = $1 AND holder = $2 AND epoch = $3 AND expires > now()
//
// and is rolled back whole unless that statement updated the row. The
// update locks the row until the commit, so a takeover (which updates the
// same row) waits for a fenced write in flight, or the write sees the new
// holder and is refused: a holder whose lease was taken over never commits
// again. A write refused only because the lease passed, while nobody took
// the scope, renews the lease (same epoch: nobody wrote since) and goes
// through.

var (
	// ErrLeaseHeld reports that another holder has a live lease on the
	// scope. The error is a *LeaseHeldError.
	ErrLeaseHeld = errors.New("postgres: lease held by another process")
	// ErrFenced reports a write refused because its Store no longer holds
	// its lease (it expired and another holder took it, or it was
	// released); nothing of the write was committed.
	ErrFenced = errors.New("postgres: write refused: this process no longer holds the lease")
)

// LeaseOptions configures a lease. The zero value means no lease.
type LeaseOptions struct {
	// Scope names what the lease covers: Stores that must not write at the
	// same time use the same scope (at most 200 bytes). Default "": no
	// lease.
	Scope string
	// TTL is how long the lease lasts without renewal; it is renewed every
	// TTL/3. A holder that stops (killed, partitioned) is taken over once
	// TTL has passed since its last renewal. Default 15 s; at least 1 s.
	TTL time.Duration
	// Wait is how long Open waits for another holder's lease to pass
	// before it fails with ErrLeaseHeld. Default 0: fail at once.
	Wait time.Duration
	// Holder names this process in the lease row, for other processes'
	// messages; a random suffix makes it unique. Default "HOST:PID".
	Holder string
}

// DefaultLeaseTTL is LeaseOptions.TTL's default.
const DefaultLeaseTTL = 15 * time.Second

// StoreScope is the lease scope of a whole store: blindex's CLI commands
// hold it, so that one command at a time writes a store, as Pebble's
// directory lock does for a data directory. Servers do not: several share
// a store, each instance's writes owned by one of them (Owners).
const StoreScope = "blindex/store"

func (o *LeaseOptions) withDefaults() []error {
	if o.Scope == "" {
		return nil
	}
	var errs []error
	if len(o.Scope) > 200 {
		errs = append(errs, errors.New("Lease.Scope must be at most 200 bytes"))
	}
	switch {
	case o.TTL == 0:
		o.TTL = DefaultLeaseTTL
	case o.TTL < time.Second:
		errs = append(errs, errors.New("Lease.TTL must be at least 1s"))
	}
	if o.Wait < 0 {
		errs = append(errs, errors.New("Lease.Wait must not be negative"))
	}
	if o.Holder == "" {
		h, _ := os.Hostname()
		o.Holder = fmt.Sprintf("%s:%d", h, os.Getpid())
	}
	return errs
}

// LeaseHeldError is the error of an acquisition refused because another
// holder's lease is live.
type LeaseHeldError struct {
	Scope  string
	Holder string        // the other holder
	Left   time.Duration // until its lease passes, unless renewed
}

func (e *LeaseHeldError) Error() string {
	return fmt.Sprintf("%v: %s holds the lease on %q for %v more unless it renews it",
		ErrLeaseHeld, e.Holder, e.Scope, e.Left.Round(time.Millisecond))
}

// Unwrap returns ErrLeaseHeld.
func (e *LeaseHeldError) Unwrap() error { return ErrLeaseHeld }

// Lease is a held lease on one scope.
type Lease struct {
	s      *Store
	scope  string
	holder string
	ttl    time.Duration
	epoch  int64
	// version is the scope's version when the lease was acquired (see
	// Owners): how many versioned writes had committed under the scope.
	version int64

	mu      sync.Mutex
	lost    error         // set once the lease is known lost or released
	stop    chan struct{} // closes the keep-alive goroutine
	stopped chan struct{}
}

// initLeases creates the lease table when it is missing.
func (s *Store) initLeases(ctx context.Context) error {
	s.leases = pgx.Identifier{s.opts.Table + "_lease"}.Sanitize()
	create := "CREATE TABLE IF NOT EXISTS " + s.leases + " (scope TEXT NOT NULL PRIMARY KEY, holder TEXT NOT NULL, expires TIMESTAMPTZ NOT NULL, epoch BIGINT NOT NULL, version BIGINT NOT NULL DEFAULT 0)"
	// Tables created before versions (see Owners) get the column.
	addVersion := "ALTER TABLE " + s.leases + " ADD COLUMN IF NOT EXISTS version BIGINT NOT NULL DEFAULT 0"
	err := s.retry(ctx, func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, create)
		if err == nil {
			_, err = s.pool.Exec(ctx, addVersion)
		}
		if isUniqueViolation(err) {
			return errRetry
		}
		return err
	})
	if err != nil {
		return wrap("create lease table", err)
	}
	return nil
}

// AcquireLease acquires the lease on scope for ttl (at least 1 s) when it
// is free, expired or already this holder's, in one statement. Another
// holder's live lease gives a *LeaseHeldError. The lease is not renewed:
// call Renew, or use Options.Lease, which does.
func (s *Store) AcquireLease(ctx context.Context, scope, holder string, ttl time.Duration) (*Lease, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	if scope == "" || len(scope) > 200 || holder == "" || ttl < time.Second {
		return nil, fmt.Errorf("%w: a lease needs a scope of 1 to 200 bytes, a holder and a TTL of at least 1s", ErrInvalidOptions)
	}
	var epoch, version int64
	err := s.retry(ctx, func(ctx context.Context) error {
		err := s.pool.QueryRow(ctx, "INSERT INTO "+s.leases+" (scope, holder, expires, epoch) VALUES ($1, $2, now() + $3::FLOAT8 * INTERVAL '1 millisecond', 1) "+
			"ON CONFLICT (scope) DO UPDATE SET holder = excluded.holder, expires = excluded.expires, epoch = "+s.leases+".epoch + 1 "+
			"WHERE "+s.leases+".expires <= now() OR "+s.leases+".holder = excluded.holder RETURNING epoch, version",
			scope, holder, float64(ttl.Milliseconds())).Scan(&epoch, &version)
		if isUniqueViolation(err) {
			return errRetry // two first acquisitions at once
		}
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		held := &LeaseHeldError{Scope: scope}
		var ms float64
		err := s.pool.QueryRow(ctx, "SELECT holder, extract(epoch FROM expires - now()) * 1000 FROM "+s.leases+" WHERE scope = $1", scope).Scan(&held.Holder, &ms)
		if err != nil {
			return nil, s.wrap("acquire lease", err)
		}
		held.Left = time.Duration(ms) * time.Millisecond
		return nil, held
	}
	if err != nil {
		return nil, s.wrap("acquire lease", err)
	}
	return &Lease{s: s, scope: scope, holder: holder, ttl: ttl, epoch: epoch, version: version}, nil
}

// waitLease acquires o's lease, retrying while another holder's lease is
// live, for up to o.Wait.
func (s *Store) waitLease(ctx context.Context, o LeaseOptions) (*Lease, error) {
	suffix := make([]byte, 4)
	rand.Read(suffix)
	holder := o.Holder + "/" + hex.EncodeToString(suffix)
	deadline := time.Now().Add(o.Wait)
	for {
		l, err := s.AcquireLease(ctx, o.Scope, holder, o.TTL)
		var held *LeaseHeldError
		if !errors.As(err, &held) || time.Now().After(deadline) {
			return l, err
		}
		wait := min(max(held.Left, 50*time.Millisecond), time.Until(deadline)+time.Millisecond, 500*time.Millisecond)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
	}
}

// Scope returns the lease's scope.
func (l *Lease) Scope() string { return l.scope }

// Holder returns the lease's holder.
func (l *Lease) Holder() string { return l.holder }

// Epoch returns the lease's epoch: it grows with every acquisition of the
// scope, by any holder.
func (l *Lease) Epoch() int64 { return l.epoch }

// Renew extends the lease by its TTL from now (the database's clock). It
// succeeds, even after the lease expired, as long as nobody acquired the
// scope since: nobody can have written under it. Otherwise the lease is
// lost for good: Renew and every fenced write return ErrFenced.
func (l *Lease) Renew(ctx context.Context) error {
	if err := l.usable(); err != nil {
		return err
	}
	var tagRows int64
	err := l.s.retry(ctx, func(ctx context.Context) error {
		tag, err := l.s.pool.Exec(ctx, "UPDATE "+l.s.leases+" SET expires = now() + $4::FLOAT8 * INTERVAL '1 millisecond' WHERE scope = $1 AND holder = $2 AND epoch = $3",
			l.scope, l.holder, l.epoch, float64(l.ttl.Milliseconds()))
		tagRows = tag.RowsAffected()
		return err
	})
	if err != nil {
		return l.s.wrap("renew lease", err)
	}
	if tagRows != 1 {
		l.setLost(ErrFenced)
		return ErrFenced
	}
	return nil
}

// Release gives the lease up (it expires now) and stops its renewal.
// Fenced writes fail with ErrFenced from then on.
func (l *Lease) Release(ctx context.Context) error {
	if l == nil {
		return nil
	}
	l.stopKeepAlive()
	if l.setLost(ErrFenced) {
		return nil // already lost or released
	}
	_, err := l.s.pool.Exec(ctx, "UPDATE "+l.s.leases+" SET expires = now() WHERE scope = $1 AND holder = $2 AND epoch = $3",
		l.scope, l.holder, l.epoch)
	if err != nil {
		return l.s.wrap("release lease", err)
	}
	return nil
}

// setLost records err as the reason the lease is unusable, and reports
// whether it already was.
func (l *Lease) setLost(err error) (already bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost != nil {
		return true
	}
	l.lost = err
	return false
}

// usable returns ErrFenced when the lease is known lost; nil for no lease.
func (l *Lease) usable() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

// keepAlive renews the lease every TTL/3 until Release, or until the
// lease is lost. A renewal that fails for a transient reason is retried
// at the next tick; the database's check of every fenced write is what
// keeps a holder whose lease passed from writing.
func (l *Lease) keepAlive() {
	stop, stopped := make(chan struct{}), make(chan struct{})
	l.mu.Lock()
	l.stop, l.stopped = stop, stopped
	l.mu.Unlock()
	go func() {
		defer close(stopped)
		t := time.NewTicker(l.ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), l.ttl/3)
			err := l.Renew(ctx)
			cancel()
			if errors.Is(err, ErrFenced) {
				return
			}
		}
	}()
}

func (l *Lease) stopKeepAlive() {
	l.mu.Lock()
	stop, stopped := l.stop, l.stopped
	l.stop = nil
	l.mu.Unlock()
	if stop != nil {
		close(stop)
		<-stopped
	}
}

// queueCheck queues the fencing statement as the first of a batch.
func (l *Lease) queueCheck(pb *pgx.Batch) {
	if l == nil {
		return
	}
	pb.Queue("UPDATE "+l.s.leases+" SET holder = holder WHERE scope = $1 AND holder = $2 AND epoch = $3 AND expires > now()",
		l.scope, l.holder, l.epoch)
}

// readCheck reads the result of the fencing statement: ErrFenced unless it
// updated the lease row.
func (l *Lease) readCheck(br pgx.BatchResults) error {
	if l == nil {
		return nil
	}
	tag, err := br.Exec()
	if err != nil {
		return err
	}
	if tag.RowsAffected() != 1 {
		return ErrFenced
	}
	return nil
}

// fencer is a check that a write's transaction runs as its first
// statement: a *Lease (nil: no check), or a versioned fence (owners.go).
type fencer interface {
	usable() error
	queueCheck(pb *pgx.Batch)
	readCheck(br pgx.BatchResults) error
}

// retryFenced runs the fenced write f with s.retry. When a lease's fence
// refuses it while the lease is not known lost — the lease passed without
// anyone taking the scope, e.g. while the database could not be reached for
// longer than the TTL — it renews the lease (which fails for good when
// another holder acquired the scope since) and runs f once more. Other
// fences are not retried.
func (s *Store) retryFenced(ctx context.Context, f0 fencer, f func(ctx context.Context) error) error {
	err := s.retry(ctx, f)
	fence, ok := f0.(*Lease)
	if ok && errors.Is(err, ErrFenced) && fence.usable() == nil {
		if rerr := fence.Renew(ctx); rerr == nil {
			err = s.retry(ctx, f)
		}
	}
	return err
}

// Fenced returns a view of s whose Apply and DeletePrefix commit only while
// l holds (ErrFenced otherwise, nothing written); reads are s's. Closing
// the view releases l; it does not close s.
func (s *Store) Fenced(l *Lease) store.Store { return &fenced{s: s, l: l} }

type fenced struct {
	s      *Store
	l      *Lease
	closed atomic.Bool
}

func (f *fenced) Get(key []byte) ([]byte, error) {
	if f.closed.Load() {
		return nil, store.ErrClosed
	}
	return f.s.Get(key)
}

func (f *fenced) GetMany(keys [][]byte) ([][]byte, error) {
	if f.closed.Load() {
		return nil, store.ErrClosed
	}
	return f.s.GetMany(keys)
}

func (f *fenced) Iterate(prefix []byte, fn func(key, value []byte) error) error {
	if f.closed.Load() {
		return store.ErrClosed
	}
	return f.s.Iterate(prefix, fn)
}

func (f *fenced) Apply(b *store.Batch, sync bool) error {
	if f.closed.Load() {
		return store.ErrClosed
	}
	return f.s.apply(b, sync, f.l)
}

func (f *fenced) DeletePrefix(prefix []byte) error {
	if f.closed.Load() {
		return store.ErrClosed
	}
	return f.s.deletePrefix(prefix, f.l)
}

func (f *fenced) Close() error {
	if f.closed.Swap(true) {
		return nil
	}
	return f.l.Release(context.Background())
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}
