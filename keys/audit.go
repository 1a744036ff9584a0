package keys

import (
	"encoding/json"
	"io"
	"math"
	"sync"
	"time"
)

// Audit operation names, as they appear in the audit log's "operation" field.
const (
	OpGenerateDataKey = "GenerateDataKey" // AWS KMS GenerateDataKey (a new root key)
	OpDecrypt         = "Decrypt"         // AWS KMS Decrypt (unwrap or re-validate a root key)
	OpLocalWrap       = "local-wrap"      // local provider: a new root key, wrapped
	OpLocalUnwrap     = "local-unwrap"    // local provider: unwrap or re-validate a root key
)

// AuditLog writes one JSON line per provider call to an [io.Writer] (a file,
// or standard error). It is safe for concurrent use; a nil *AuditLog records
// nothing.
//
// Each line is a JSON object with these fields, in this order:
//
//	time                RFC 3339 time in UTC, nanoseconds, when the call ended
//	org                 the encryption context's organisation
//	instance            the encryption context's instance
//	operation           GenerateDataKey, Decrypt, local-wrap or local-unwrap
//	key_id              the wrapping key: a KMS key ARN or "local:<fingerprint>"
//	encryption_context  the context as sent to the provider (EncryptionContext.Map)
//	outcome             "ok" or "error"
//	error_class         "revoked", "unavailable", "invalid", or "" when ok
//	latency_ms          the call's duration in milliseconds (retries included)
//
// A line never holds key material, a wrapped key, or an error message (a
// provider's message may quote its input); only the error's class.
//
// A failed write does not fail the provider call that it records: the first
// write error is kept and reported by [AuditLog.Err], so a server can alert
// on it or refuse to go on.
type AuditLog struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
	err error
}

// NewAuditLog returns an audit log that writes to w. Each line is written
// with a single Write call.
func NewAuditLog(w io.Writer) *AuditLog {
	return &AuditLog{w: w}
}

// AuditEvent is one provider call, as a provider reports it to
// [AuditLog.Record].
type AuditEvent struct {
	Time      time.Time         // when the call ended; zero means now
	Operation string            // one of the Op constants
	KeyID     string            // the wrapping key's id (Provider.KeyID)
	Context   EncryptionContext // the context the call was bound to
	Err       error             // the call's error, only its class is logged
	Latency   time.Duration     // how long the call took
}

// auditLine is the JSON shape of one line; field order is the documented one.
type auditLine struct {
	Time              string            `json:"time"`
	Org               string            `json:"org"`
	Instance          string            `json:"instance"`
	Operation         string            `json:"operation"`
	KeyID             string            `json:"key_id"`
	EncryptionContext map[string]string `json:"encryption_context"`
	Outcome           string            `json:"outcome"`
	ErrorClass        ErrorClass        `json:"error_class"`
	LatencyMS         float64           `json:"latency_ms"`
}

// Record writes one line for e. It does nothing on a nil *AuditLog.
func (a *AuditLog) Record(e AuditEvent) {
	if a == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	line := auditLine{
		Time:              e.Time.UTC().Format(time.RFC3339Nano),
		Org:               e.Context.Org,
		Instance:          e.Context.Instance,
		Operation:         e.Operation,
		KeyID:             e.KeyID,
		EncryptionContext: e.Context.Map(),
		Outcome:           "ok",
		ErrorClass:        Classify(e.Err),
		// Microsecond resolution is plenty for a network call.
		LatencyMS: math.Round(float64(e.Latency)/float64(time.Microsecond)) / 1000,
	}
	if e.Err != nil {
		line.Outcome = "error"
	}
	b, err := json.Marshal(line)
	if err != nil {
		// Only strings and a float: Marshal cannot fail on this shape.
		panic("keys: internal error: audit line: " + err.Error())
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.buf = append(append(a.buf[:0], b...), '\n')
	if _, err := a.w.Write(a.buf); err != nil && a.err == nil {
		a.err = err
	}
}

// Err returns the first error that writing a line returned, or nil.
func (a *AuditLog) Err() error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}
