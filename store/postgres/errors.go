package postgres

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/blindex/blindex/store"
)

var (
	// ErrUnavailable reports that the database could not be reached, or
	// that the connection was lost or timed out: a transient failure.
	ErrUnavailable = errors.New("postgres: database unavailable")
	// ErrDatabase reports any other error of the database.
	ErrDatabase = errors.New("postgres: database error")
	// ErrSchema reports that the table exists with other columns than the
	// store's (k bytea, v bytea).
	ErrSchema = errors.New("postgres: table has an unexpected schema")
	// ErrInvalidOptions reports invalid Options or an unparsable
	// connection string.
	ErrInvalidOptions = errors.New("postgres: invalid options")
)

// errRetry asks retry for another attempt.
var errRetry = errors.New("postgres: retry")

// retry runs f until it succeeds, fails with an error that is not worth
// retrying, maxAttempts have run or ctx is done. Worth retrying are
// serialization failures and deadlocks (the transaction was rolled back)
// and connection failures before anything was sent.
func (s *Store) retry(ctx context.Context, f func(ctx context.Context) error) error {
	var err error
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(time.Duration(attempt*attempt) * 10 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return err
			case <-t.C:
			}
		}
		err = f(ctx)
		if err == nil || !retryable(err) || s.closed.Load() {
			return err
		}
	}
	return err
}

func retryable(err error) bool {
	if errors.Is(err, errRetry) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "40001" || pe.Code == "40P01"
	}
	return pgconn.SafeToRetry(err)
}

// wrap is the package-level wrap, reporting store.ErrClosed for an error
// caused by a concurrent Close.
func (s *Store) wrap(op string, err error) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	if errors.Is(err, ErrFenced) {
		return err
	}
	return wrap(op, err)
}

// Error is an error of the database or of the connection, with the
// pgx error replaced by what is safe to show: the operation, the SQLSTATE
// code and the server's message. It matches ErrUnavailable or ErrDatabase.
type Error struct {
	Op      string // the store operation: "get", "apply", ...
	Code    string // SQLSTATE, "" for a connection error
	Message string // the server's or the connection's message
	kind    error
}

func (e *Error) Error() string {
	s := e.kind.Error() + ": " + e.Op + ": " + e.Message
	if e.Code != "" {
		s += " (SQLSTATE " + e.Code + ")"
	}
	return s
}

// Unwrap returns ErrUnavailable or ErrDatabase.
func (e *Error) Unwrap() error { return e.kind }

// wrap converts an error of pgx into an *Error. errRetry (retries ran
// out) becomes the database error it stood for.
func wrap(op string, err error) error {
	if errors.Is(err, errRetry) {
		return &Error{Op: op, Message: "concurrent schema change; retries exhausted", kind: ErrDatabase}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		kind := ErrDatabase
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", // shutdown, crash, starting up
			pe.Code == "53300": // too many connections
			kind = ErrUnavailable
		}
		// The message only: PostgreSQL's detail may quote a key.
		return &Error{Op: op, Code: pe.Code, Message: pe.Message, kind: kind}
	}
	var ne net.Error
	var ce *pgconn.ConnectError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return &Error{Op: op, Message: "timed out", kind: ErrUnavailable}
	case errors.As(err, &ce), errors.As(err, &ne), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		pgconn.SafeToRetry(err), pgconn.Timeout(err), strings.Contains(err.Error(), "conn closed"):
		return &Error{Op: op, Message: err.Error(), kind: ErrUnavailable}
	}
	return &Error{Op: op, Message: err.Error(), kind: ErrDatabase}
}
