// Package postgres is a store.Store on a PostgreSQL-compatible database:
// one table of bytea keys and values, reached through a pgx connection pool.
//
// The database sees what every blindex store sees: pseudorandom keys and
// sealed values, never plaintext. Several blindex processes may share one
// database; this package fences their writes (Owners) but does not decide
// which of them writes an instance.
//
// # Mapping of the store contract
//
//   - Apply is one transaction. The batch is reduced to the last write of
//     each key, then written with one INSERT ... ON CONFLICT (k) DO UPDATE
//     and one DELETE per chunk of at most a few MiB. A batch written with
//     sync false commits with synchronous_commit off on PostgreSQL: it is
//     atomic, and may be lost (whole) by a crash of the database in the
//     next fraction of a second.
//   - Iterate reads pages of PageSize keys, by key (k > last ORDER BY k
//     LIMIT n), all in one read-only REPEATABLE READ transaction, so that
//     it sees one snapshot and never holds more than one row in memory.
//   - DeletePrefix is one DELETE statement, atomic.
//   - Serialization failures and deadlocks (SQLSTATE 40001, 40P01), and
//     connection failures before a statement was sent, are retried a few
//     times; other errors are returned.
//
// # Leases
//
// Options.Lease (or AcquireLease and Fenced) makes a Store the only writer
// of a scope among all processes over the database: a lease row timed on
// the database's clock, checked by every fenced write inside its own
// transaction, so that a holder whose lease has passed and been taken over
// has its writes refused whole (ErrFenced). See lease.go.
//
// Store.Owners hands out such leases per scope on demand (acquired on a
// first write, renewed while writing, released when idle), with a version
// per scope that every versioned write bumps and checks in its own
// transaction (ErrStale otherwise): several processes can then each write
// any scope, one at a time, and know when another wrote. See owners.go.
//
// # Compatibility
//
// The SQL stays within what PostgreSQL (tested: 15), CockroachDB and
// YugabyteDB accept: CREATE TABLE IF NOT EXISTS, INSERT ... ON CONFLICT DO
// UPDATE, unnest of arrays, = ANY, bytea comparisons; no PL/pgSQL, no
// advisory locks. On YugabyteDB the key is declared ASC, so that the table
// is range-sharded and prefix scans stay range scans. Only PostgreSQL 15 is
// exercised by the tests.
//
// # Errors
//
// Backend errors do not leak: every error of the database or of the
// connection is reported as one of this package's errors, which match
// ErrUnavailable (the database could not be reached or the connection was
// lost: worth retrying later) or ErrDatabase (anything else) with
// errors.Is, and carry the SQLSTATE code and the server's message, never a
// key, a value or the connection string's password. A missing key is
// store.ErrNotFound and a closed store store.ErrClosed.
package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/blindex/blindex/store"
)

// Options configures a Store. The zero value is valid.
type Options struct {
	// Table is the name of the table of keys and values, created when
	// missing: a lower-case SQL identifier (letters, digits and '_', at
	// most 63 bytes). It lives in the connection's current schema (set one
	// with the search_path parameter of the connection string). Default
	// "blindex_kv".
	Table string
	// PageSize is the number of rows Iterate reads per query. Default 256.
	PageSize int
	// MaxConns is the size of the connection pool: the most store calls
	// running at once (Iterate holds a connection until it returns).
	// Default 16, or pool_max_conns of the connection string.
	MaxConns int32
	// Timeout bounds each Get, Apply and DeletePrefix, retries included.
	// Default 60 s.
	Timeout time.Duration
	// Lease, when its Scope is set, makes the Store the only writer of
	// that scope among all Stores over the database: Open acquires the
	// lease, the Store renews it, Apply and DeletePrefix commit only while
	// it holds, and Close releases it. Default: no lease, unfenced writes.
	Lease LeaseOptions
}

const (
	defaultTable    = "blindex_kv"
	defaultPageSize = 256
	defaultTimeout  = 60 * time.Second
	defaultMaxConns = 16
	// maxChunkBytes bounds the keys and values sent in one statement of
	// Apply (CockroachDB refuses messages over 16 MiB by default).
	maxChunkBytes = 4 << 20
	// maxChunkRows bounds the rows of one statement of Apply.
	maxChunkRows = 2000
	// maxGetMany bounds the keys of one statement of GetMany.
	maxGetMany = 256
	// maxAttempts bounds the attempts of a retried operation.
	maxAttempts = 5
)

var identRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// dialect is the database product, found at Open.
type dialect int

const (
	dialectPostgres dialect = iota
	dialectCockroach
	dialectYugabyte
)

// Store is a store.Store on a PostgreSQL-compatible database.
type Store struct {
	pool     *pgxpool.Pool
	opts     Options
	dialect  dialect
	closed   atomic.Bool
	table    string // quoted identifier
	qGet     string
	qGetMany string
	qUpsert  string
	qDelete  string
	qFirst   [2]string // first page: [no upper bound, upper bound]
	qNext    [2]string // next pages
	qDelPfx  [2]string
	syncOffs string // statement turning synchronous_commit off for one transaction; "" when not supported
	leases   string // quoted identifier of the lease table
	lease    *Lease // Options.Lease's, nil without
}

var (
	_ store.Store       = (*Store)(nil)
	_ store.MultiGetter = (*Store)(nil)
)

// Open connects to the database named by connString (a postgres:// URL or
// a keyword/value string, as pgx accepts), creates the table when it is
// missing and checks its columns when it exists.
func Open(ctx context.Context, connString string, o Options) (*Store, error) {
	var errs []error
	if o.Table == "" {
		o.Table = defaultTable
	} else if !identRE.MatchString(o.Table) {
		errs = append(errs, errors.New("Table must be a lower-case SQL identifier of at most 63 bytes (letters, digits, '_')"))
	}
	switch {
	case o.PageSize == 0:
		o.PageSize = defaultPageSize
	case o.PageSize < 0:
		errs = append(errs, errors.New("PageSize must not be negative"))
	}
	if o.MaxConns < 0 {
		errs = append(errs, errors.New("MaxConns must not be negative"))
	}
	switch {
	case o.Timeout == 0:
		o.Timeout = defaultTimeout
	case o.Timeout < 0:
		errs = append(errs, errors.New("Timeout must not be negative"))
	}
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		// pgconn's message quotes the connection string (password
		// masked); say only what is wrong with it.
		msg := "cannot parse the connection string"
		var pe *pgconn.ParseConfigError
		if errors.As(err, &pe) && pe.Unwrap() != nil {
			inner := pe.Unwrap()
			var ue *url.Error // quotes the URL, password included
			if errors.As(inner, &ue) {
				inner = ue.Err
			}
			msg += ": " + inner.Error()
		}
		errs = append(errs, errors.New(msg))
	}
	errs = append(errs, o.Lease.withDefaults()...)
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidOptions, errors.Join(errs...))
	}
	switch {
	case o.MaxConns > 0:
		cfg.MaxConns = o.MaxConns
	case !strings.Contains(connString, "pool_max_conns"):
		cfg.MaxConns = defaultMaxConns
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "blindex"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, wrap("connect", err)
	}
	s := &Store{pool: pool, opts: o}
	if err := s.init(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if o.Lease.Scope != "" {
		l, err := s.waitLease(ctx, o.Lease)
		if err != nil {
			pool.Close()
			return nil, err
		}
		s.lease = l
		l.keepAlive()
	}
	return s, nil
}

// init finds the dialect, prepares the statements' text and creates or
// checks the table.
func (s *Store) init(ctx context.Context) error {
	var version string
	if err := s.pool.QueryRow(ctx, "SELECT version()").Scan(&version); err != nil {
		return wrap("connect", err)
	}
	switch {
	case strings.Contains(version, "CockroachDB"):
		s.dialect = dialectCockroach
	case strings.Contains(version, "-YB-"):
		s.dialect = dialectYugabyte
	default:
		s.dialect = dialectPostgres
		s.syncOffs = "SET LOCAL synchronous_commit TO OFF"
	}
	t := pgx.Identifier{s.opts.Table}.Sanitize()
	s.table = t
	s.qGet = "SELECT v FROM " + t + " WHERE k = $1"
	s.qGetMany = "SELECT k, v FROM " + t + " WHERE k = ANY($1::BYTEA[])"
	s.qUpsert = "INSERT INTO " + t + " (k, v) SELECT * FROM unnest($1::BYTEA[], $2::BYTEA[]) ON CONFLICT (k) DO UPDATE SET v = excluded.v"
	s.qDelete = "DELETE FROM " + t + " WHERE k = ANY($1::BYTEA[])"
	s.qFirst = [2]string{
		"SELECT k, v FROM " + t + " WHERE k >= $1 ORDER BY k LIMIT $2",
		"SELECT k, v FROM " + t + " WHERE k >= $1 AND k < $3 ORDER BY k LIMIT $2",
	}
	s.qNext = [2]string{
		"SELECT k, v FROM " + t + " WHERE k > $1 ORDER BY k LIMIT $2",
		"SELECT k, v FROM " + t + " WHERE k > $1 AND k < $3 ORDER BY k LIMIT $2",
	}
	s.qDelPfx = [2]string{
		"DELETE FROM " + t + " WHERE k >= $1",
		"DELETE FROM " + t + " WHERE k >= $1 AND k < $2",
	}

	create := "CREATE TABLE IF NOT EXISTS " + t + " (k BYTEA NOT NULL PRIMARY KEY, v BYTEA NOT NULL)"
	if s.dialect == dialectYugabyte {
		create = "CREATE TABLE IF NOT EXISTS " + t + " (k BYTEA NOT NULL, v BYTEA NOT NULL, PRIMARY KEY (k ASC))"
	}
	err := s.retry(ctx, func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, create)
		// Two processes creating the table at once: PostgreSQL may
		// report a unique violation on its catalog; the next attempt
		// finds the table.
		if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == "23505" {
			return errRetry
		}
		return err
	})
	if err != nil {
		return wrap("create table", err)
	}
	if s.dialect == dialectPostgres {
		// Sealed values do not compress: store them without trying.
		if _, err := s.pool.Exec(ctx, "ALTER TABLE "+t+" ALTER COLUMN v SET STORAGE EXTERNAL"); err != nil {
			return wrap("create table", err)
		}
	}
	rows, err := s.pool.Query(ctx,
		"SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 ORDER BY column_name",
		s.opts.Table)
	if err != nil {
		return wrap("check table", err)
	}
	var cols []string
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			rows.Close()
			return wrap("check table", err)
		}
		cols = append(cols, name+" "+typ)
	}
	if err := rows.Err(); err != nil {
		return wrap("check table", err)
	}
	if !slices.Equal(cols, []string{"k bytea", "v bytea"}) {
		return fmt.Errorf("%w: table %s has columns (%s), want (k bytea, v bytea); give another table name", ErrSchema, s.opts.Table, strings.Join(cols, ", "))
	}
	return s.initLeases(ctx)
}

// Get implements store.Store.
func (s *Store) Get(key []byte) ([]byte, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	var v []byte
	err := s.retry(ctx, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, s.qGet, key).Scan(&v)
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, store.ErrNotFound
	case err != nil:
		return nil, s.wrap("get", err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// GetMany implements store.MultiGetter: one statement (k = ANY(...)) per
// maxGetMany keys, so that a search reading many pages pays one round
// trip for them.
func (s *Store) GetMany(keys [][]byte) ([][]byte, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	out := make([][]byte, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	for lo := 0; lo < len(keys); lo += maxGetMany {
		chunk := keys[lo:min(lo+maxGetMany, len(keys))]
		at := make(map[string][]int, len(chunk))
		for i, k := range chunk {
			at[string(k)] = append(at[string(k)], lo+i)
		}
		err := s.retry(ctx, func(ctx context.Context) error {
			clear(out[lo : lo+len(chunk)]) // a retry starts afresh
			rows, err := s.pool.Query(ctx, s.qGetMany, chunk)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var k, v []byte
				if err := rows.Scan(&k, &v); err != nil {
					return err
				}
				if v == nil {
					v = []byte{}
				}
				for _, i := range at[string(k)] {
					out[i] = v
				}
			}
			return rows.Err()
		})
		if err != nil {
			return nil, s.wrap("get", err)
		}
	}
	return out, nil
}

// Apply implements store.Store. With Options.Lease, it commits only while
// this Store holds the lease (ErrFenced otherwise, nothing written).
func (s *Store) Apply(b *store.Batch, sync bool) error {
	return s.apply(b, sync, s.lease)
}

// apply commits b, and when fence is not nil, only while fence holds:
// the check is a statement of the same transaction.
func (s *Store) apply(b *store.Batch, sync bool, fence fencer) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	if b.Len() == 0 {
		return nil
	}
	if err := fence.usable(); err != nil {
		return err
	}
	// The last write of each key wins; one statement must not touch a key
	// twice. Writing in key order makes concurrent batches lock rows in the
	// same order.
	last := make(map[string]int, len(b.Ops))
	for i, op := range b.Ops {
		last[string(op.Key)] = i
	}
	ops := make([]store.Op, 0, len(last))
	for i, op := range b.Ops {
		if last[string(op.Key)] == i {
			ops = append(ops, op)
		}
	}
	slices.SortFunc(ops, func(a, b store.Op) int { return bytes.Compare(a.Key, b.Key) })

	// The statements, queued anew on each attempt.
	type stmt struct {
		sql  string
		args []any
	}
	var stmts []stmt
	if !sync && s.syncOffs != "" {
		stmts = append(stmts, stmt{sql: s.syncOffs})
	}
	var setK, setV, delK [][]byte
	setBytes, delBytes := 0, 0
	flushSets := func() {
		if len(setK) > 0 {
			stmts = append(stmts, stmt{s.qUpsert, []any{setK, setV}})
			setK, setV, setBytes = nil, nil, 0
		}
	}
	flushDels := func() {
		if len(delK) > 0 {
			stmts = append(stmts, stmt{s.qDelete, []any{delK}})
			delK, delBytes = nil, 0
		}
	}
	for _, op := range ops {
		if op.Delete {
			if len(delK) == maxChunkRows || delBytes+len(op.Key) > maxChunkBytes {
				flushDels()
			}
			delK = append(delK, op.Key)
			delBytes += len(op.Key)
			continue
		}
		n := len(op.Key) + len(op.Value)
		if len(setK) == maxChunkRows || (len(setK) > 0 && setBytes+n > maxChunkBytes) {
			flushSets()
		}
		v := op.Value
		if v == nil {
			v = []byte{} // a set of an empty value is not NULL
		}
		setK, setV = append(setK, op.Key), append(setV, v)
		setBytes += n
	}
	flushSets()
	flushDels()

	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	err := s.retryFenced(ctx, fence, func(ctx context.Context) error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			var pb pgx.Batch
			fence.queueCheck(&pb)
			for _, st := range stmts {
				pb.Queue(st.sql, st.args...)
			}
			br := tx.SendBatch(ctx, &pb)
			if err := fence.readCheck(br); err != nil {
				br.Close()
				return err // rolled back: nothing of the batch is written
			}
			return br.Close()
		})
	})
	if err != nil {
		return s.wrap("apply", err)
	}
	return nil
}

// Iterate implements store.Store.
func (s *Store) Iterate(prefix []byte, fn func(key, value []byte) error) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	ctx := context.Background()
	end := prefixEnd(prefix)
	bounded := 0
	if end != nil {
		bounded = 1
	}
	args := func(from []byte) []any {
		if end != nil {
			return []any{from, s.opts.PageSize, end}
		}
		return []any{from, s.opts.PageSize}
	}
	var tx pgx.Tx
	err := s.retry(ctx, func(ctx context.Context) error {
		var err error
		tx, err = s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		return err
	})
	if err != nil {
		return s.wrap("iterate", err)
	}
	defer tx.Rollback(ctx)

	from := prefix
	if from == nil {
		from = []byte{}
	}
	q := s.qFirst[bounded]
	var after []byte // the last key visited, the next page's lower bound
	for {
		rows, err := tx.Query(ctx, q, args(from)...)
		if err != nil {
			return s.wrap("iterate", err)
		}
		n := 0
		for rows.Next() {
			n++
			var k, v []byte
			if err := rows.Scan(&k, &v); err != nil {
				rows.Close()
				return s.wrap("iterate", err)
			}
			after = append(after[:0], k...)
			if v == nil {
				v = []byte{}
			}
			if err := fn(k, v); err != nil {
				rows.Close()
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return s.wrap("iterate", err)
		}
		if n < s.opts.PageSize {
			break
		}
		from, q = after, s.qNext[bounded]
	}
	if err := tx.Commit(ctx); err != nil {
		return s.wrap("iterate", err)
	}
	return nil
}

// DeletePrefix implements store.Store. It refuses the empty prefix. With
// Options.Lease, it deletes only while this Store holds the lease.
func (s *Store) DeletePrefix(prefix []byte) error {
	return s.deletePrefix(prefix, s.lease)
}

func (s *Store) deletePrefix(prefix []byte, fence fencer) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	if len(prefix) == 0 {
		return errors.New("postgres: refusing to delete the whole key space")
	}
	if err := fence.usable(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	err := s.retryFenced(ctx, fence, func(ctx context.Context) error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			var pb pgx.Batch
			fence.queueCheck(&pb)
			if end := prefixEnd(prefix); end != nil {
				pb.Queue(s.qDelPfx[1], prefix, end)
			} else {
				pb.Queue(s.qDelPfx[0], prefix)
			}
			br := tx.SendBatch(ctx, &pb)
			if err := fence.readCheck(br); err != nil {
				br.Close()
				return err
			}
			return br.Close()
		})
	})
	if err != nil {
		return s.wrap("delete prefix", err)
	}
	return nil
}

// Close implements store.Store. It releases the lease of Options.Lease,
// and waits for running calls to return their connections.
func (s *Store) Close() error {
	if s.closed.Load() {
		return nil
	}
	var err error
	if s.lease != nil {
		err = s.lease.Release(context.Background())
	}
	if s.closed.Swap(true) {
		return nil
	}
	s.pool.Close()
	return err
}

// prefixEnd returns the smallest key greater than every key with prefix, or
// nil when there is none (prefix is empty or all 0xff bytes).
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

var passwordRE = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// Redact returns connString with its password replaced by "xxxxx", for
// messages and logs.
func Redact(connString string) string {
	if u, err := url.Parse(connString); err == nil && u.Scheme != "" {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	return passwordRE.ReplaceAllString(connString, "${1}xxxxx")
}

// IsURL reports whether s is a postgres:// or postgresql:// URL: the form
// of a store location that selects this backend.
func IsURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}
