package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/blindex/blindex/index"
	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/policy"
	"github.com/blindex/blindex/query"
	"github.com/blindex/blindex/store"
	"github.com/blindex/blindex/store/control"
	"github.com/blindex/blindex/tenancy"
	"github.com/blindex/blindex/tokenize"
)

// cliError is an error with the exit code it maps to and, optionally, what
// the user should do next. Messages never hold document ids, content,
// terms or key material.
type cliError struct {
	code  int
	err   error
	next  string // what to do next; "" when the message already says it
	usage bool   // print a pointer to the command's -h
}

func (e *cliError) Error() string { return e.err.Error() }
func (e *cliError) Unwrap() error { return e.err }

// usageErrorf reports a usage error (exit 1) and points at -h.
func usageErrorf(format string, args ...any) error {
	return &cliError{code: exitUsage, err: fmt.Errorf(format, args...), usage: true}
}

// inputErrorf reports invalid input (exit 1) with what to do next.
func inputErrorf(next, format string, args ...any) error {
	return &cliError{code: exitUsage, err: fmt.Errorf(format, args...), next: next}
}

// withNext attaches a next step to err, keeping its exit code.
func withNext(err error, next string) error {
	var ce *cliError
	if errors.As(err, &ce) {
		if ce.next == "" {
			ce.next = next
		}
		return ce
	}
	return &cliError{code: exitCode(err), err: err, next: next}
}

// exitCode maps an error to the CLI's exit code.
func exitCode(err error) int {
	var ce *cliError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ce) && ce.code != 0:
		return ce.code
	case errors.Is(err, store.ErrDiskFull), errors.Is(err, store.ErrWriteFailed):
		return exitStorage
	case errors.Is(err, index.ErrCorrupt), errors.Is(err, control.ErrForged), errors.Is(err, control.ErrUnauthenticated):
		return exitCorrupt
	case errors.Is(err, control.ErrNoKey):
		return exitKey
	case errors.Is(err, keys.ErrKeyRevoked), errors.Is(err, keys.ErrInvalidWrappedKey):
		return exitKey
	case errors.Is(err, keys.ErrKeyUnavailable):
		return exitKMS
	}
	return exitUsage
}

// defaultNext is the next step for errors that do not carry one.
func defaultNext(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "the query ran longer than --timeout: narrow it (fewer wildcard, regexp or fuzzy terms), or give a longer --timeout"
	case errors.Is(err, store.ErrDiskFull):
		return "the disk holding the data directory is full: free space (or move the data directory to a larger disk), then run the command again; what was acknowledged is intact, and read-only commands (search, get, check) keep working"
	case errors.Is(err, store.ErrWriteFailed):
		return "the disk holding the data directory failed a write: check the disk and the system log, then run the command again; what was acknowledged is intact"
	case errors.Is(err, keys.ErrHeld):
		return "the instance is locked by 'blindex instance revoke-now' (or the server's revoke-now); it stays locked until 'blindex instance restore --data DIR --instance NAME'"
	case errors.Is(err, index.ErrCorrupt):
		return "" // CorruptError says what to do
	case errors.Is(err, keys.ErrKeyRevoked):
		// Before ErrInvalidWrappedKey: KMS's "invalid ciphertext" is both.
		return "the instance's key is revoked or could not be re-validated: restore access to the key (for a BYOK instance: enable the KMS key, cancel its deletion, or fix its key policy), " +
			"then run 'blindex instance restore --data DIR --instance NAME' and the command again"
	case errors.Is(err, keys.ErrInvalidWrappedKey):
		return "the provider key does not open this instance's key: use the --home (or BLINDEX_HOME) the instance was created with"
	case errors.Is(err, keys.ErrKeyUnavailable):
		return "the key provider could not be reached (for KMS: the endpoint, the network, throttling or the AWS credentials; this is not a revocation, and nothing was read or written): check them, then run the command again"
	case errors.Is(err, tenancy.ErrBYOKImmutable):
		return "create a new BYOK instance ('blindex instance create --byok ...') and re-index the documents into it"
	case errors.Is(err, policy.ErrRefused), errors.Is(err, policy.ErrUnknownProduct), errors.Is(err, policy.ErrUnknownPlan):
		return "see the policy in effect with 'blindex policy show' (products, early-access lists, plans that offer BYOK); set an organisation's plan with 'blindex org set --data DIR --org O --plan P', or give a policy that allows it with --policy FILE"
	case errors.Is(err, control.ErrUnauthenticated):
		return "this control record was written before control records were authenticated: review the list with 'blindex adopt --data DIR', then adopt it with 'blindex adopt --data DIR --yes'"
	case errors.Is(err, control.ErrForged), errors.Is(err, control.ErrNoKey):
		return "" // the error says what to do
	case errors.Is(err, tenancy.ErrPolicy):
		return "see the README's \"BYOK: configurations and instances\" section for the rules: one configuration per organisation, the region of the key, linked products agree on BYOK"
	case errors.Is(err, query.ErrQueryTooExpensive):
		return "narrow the query (fewer or more specific wildcard, regexp, prefix, fuzzy or range clauses), or give a larger --max-expansion-entries"
	case errors.Is(err, query.ErrInvalidQuery) && strings.Contains(err.Error(), "TooManyTermSearchers"):
		// bleve's per-search term searcher limit (index.Options.MaxTermSearchers).
		return fmt.Sprintf("the query expands to more terms than one search may read (%d): use fewer or more specific wildcard, regexp, prefix, fuzzy or range clauses", index.DefaultMaxTermSearchers)
	case errors.Is(err, query.ErrInvalidQuery):
		return "fix the query (see the README's \"Query syntax\" section, or 'blindex search -h')"
	case errors.Is(err, tokenize.ErrInvalidMapping):
		return "fix the mapping file (see the README's \"Mapping\" section for the supported subset)"
	case errors.Is(err, index.ErrFormat):
		return "" // the error names the versions
	case errors.Is(err, index.ErrClosed):
		return "this is a bug in blindex: please report it"
	}
	return ""
}

// report prints err for command cmd to w and returns its exit code.
func report(w io.Writer, cmd string, err error) int {
	if err == nil {
		return exitOK
	}
	msg := strings.TrimSpace(err.Error())
	fmt.Fprintf(w, "blindex %s: %s\n", cmd, msg)
	var ce *cliError
	next := ""
	usage := false
	if errors.As(err, &ce) {
		next, usage = ce.next, ce.usage
	}
	if next == "" {
		next = defaultNext(err)
	}
	if next != "" {
		fmt.Fprintf(w, "  next: %s\n", next)
	}
	if usage {
		fmt.Fprintf(w, "  run 'blindex %s -h' for usage\n", cmd)
	}
	return exitCode(err)
}
