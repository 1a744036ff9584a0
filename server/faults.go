package server

import (
	"errors"
	"math"
	"net/http"

	"github.com/blindex/blindex/index"
	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/store"
	"github.com/blindex/blindex/store/postgres"
)

// Error codes of faults: a full or failing disk, an explicit lock, a key
// provider that cannot be reached.
const (
	CodeStorageFull   = "storage_full"   // 507: the disk holding the data directory is full; nothing was written (Retry-After)
	CodeStorageFailed = "storage_failed" // 503: the disk failed a write; writes are refused until the server restarts (Retry-After)
)

// storageRetryAfter is the Retry-After, in seconds, of storage errors.
const storageRetryAfter = 30

// faultError translates the errors of faults into answers, or returns nil.
// A full disk is 507 (writes resume by themselves once space is freed); a
// failed write is 503 (the store refuses writes until the server restarts);
// an explicit lock is 423; an unreachable key provider is 503 with the
// keyring's backoff as Retry-After, never 423, whether or not the key was
// in memory.
func faultError(err error) *apiError {
	switch {
	case errors.Is(err, store.ErrDiskFull):
		return &apiError{status: http.StatusInsufficientStorage, code: CodeStorageFull, retryAfter: storageRetryAfter, cause: err,
			message: "the disk holding the server's data is full: nothing was written, and what was acknowledged is intact. Reads and searches keep working; writes resume by themselves once an operator frees space"}
	case errors.Is(err, store.ErrWriteFailed):
		return &apiError{status: http.StatusServiceUnavailable, code: CodeStorageFailed, retryAfter: storageRetryAfter, cause: err,
			message: "the disk holding the server's data failed a write: this write was not applied, and what was acknowledged is intact. Reads and searches keep working; writes are refused until the server is restarted (it reports not ready)"}
	case errors.Is(err, postgres.ErrUnavailable):
		return &apiError{status: http.StatusServiceUnavailable, code: CodeStoreUnavailable, retryAfter: 1, cause: err,
			message: "the database holding the server's data cannot be reached now: an outage, not a failure of the request's content. A write that got this answer was not acknowledged (it may or may not have been applied: retrying it is safe, writes are idempotent); retry"}
	case errors.Is(err, index.ErrStale), errors.Is(err, postgres.ErrLeaseHeld):
		return &apiError{status: http.StatusServiceUnavailable, code: CodeNotOwner, retryAfter: 1, cause: err,
			message: "another node took over this instance's writes during the request; nothing was written. Retry"}
	case errors.Is(err, keys.ErrHeld):
		return &apiError{status: http.StatusLocked, code: CodeInstanceLocked, cause: err,
			message: "the instance is locked by revoke-now: nothing was read or written. It stays locked, across restarts, until an administrator calls POST /v1/instances/{name}/restore"}
	case errors.Is(err, keys.ErrKeyUnavailable) && !errors.Is(err, keys.ErrKeyRevoked):
		retry := 5
		var be *keys.BackoffError
		if errors.As(err, &be) {
			retry = max(1, int(math.Ceil(be.RetryAfter.Seconds())))
		}
		return &apiError{status: http.StatusServiceUnavailable, code: CodeKMSUnavailable, retryAfter: retry, cause: err,
			message: "the key provider (KMS) cannot be reached, and this instance's key could not be re-validated in time: an outage, not a revocation. Nothing was read or written; retry later"}
	}
	return nil
}

// storeUnready says why the store makes the server unready ("" when it
// does not): it refuses writes because the disk is full or failed.
func (s *Server) storeUnready() string {
	h, ok := s.st.(interface{ Health() error })
	if !ok {
		return ""
	}
	switch err := h.Health(); {
	case err == nil:
		return ""
	case errors.Is(err, store.ErrDiskFull):
		return "the disk holding the data directory is full: writes are refused until space is freed (reads work)"
	case errors.Is(err, store.ErrWriteFailed):
		return "the disk holding the data directory failed a write: writes are refused until the server restarts (reads work)"
	}
	return ""
}

// revokeNowScope says how many instances a revoke-now of name locked, and
// what the answer's message says: a BYOK instance's whole configuration,
// or an instance that is not BYOK alone.
func revokeNowScope(g *groups, name string) (int, string) {
	g.mu.Lock()
	grp := g.of[name]
	g.mu.Unlock()
	const until = "It holds — across requests, key checks, servers sharing the store and restarts — until POST .../restore. It does not revoke the key in KMS: to revoke for good, disable the key there too"
	if grp == groupLocal || grp == "" {
		return 1, "this instance is locked. " + until
	}
	return g.size(name), "every instance under this instance's encryption configuration is locked. " + until
}
