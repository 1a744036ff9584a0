// Package keys holds blindex's key providers: the interface an instance's root
// keys are wrapped through, the local file provider that is the embedded
// default, and the errors every provider reports in common.
//
// A provider never sees document content. It wraps and unwraps 32-byte instance
// root keys, always bound to an [EncryptionContext] naming the organisation,
// the instance and the key generation, so that a wrapped key cannot be unwrapped
// for another instance or generation, and so that the customer's audit trail
// (CloudTrail for AWS KMS) says which instance used their key.
//
// Plaintext keys returned by a provider belong to the caller, who MUST zero them
// (with [Zero]) when they are no longer needed.
//
// # Entry points
//
//   - [Provider]: the two-method interface a wrapping key is plugged in
//     through. [NewLocalProvider] is the embedded default (a key file);
//     package awskms is AWS KMS (BYOK); package kmstest runs a real local
//     KMS for tests.
//   - [Keyring] and [Lease]: one keyring per encryption configuration. It
//     holds each instance's unwrapped root key for a lease (the revocation
//     bound), re-validates it with the provider before the lease ends,
//     locks every lease at once on revocation, fails closed when the lease
//     runs out during an outage (reporting [ErrKeyUnavailable], not a
//     revocation), backs off per keyring while the provider is unavailable
//     ([BackoffError]), and unlocks by itself when the provider accepts the
//     key again. Explicit locks ([Keyring.RevokeNow],
//     [Keyring.RevokeInstance], [ErrHeld]) hold until an explicit restore,
//     across keyrings and restarts when recorded in a [LockStore].
//     [Lease.Acquire] never calls the provider.
//   - [AuditLog]: one JSON line per provider call.
//   - Errors: [ErrKeyRevoked], [ErrHeld], [ErrKeyUnavailable],
//     [BackoffError], [ErrInvalidWrappedKey], [ErrInvalidContext],
//     [ErrClosed]; [Classify] maps any provider error to its [ErrorClass].
//   - [LocalProvider.ControlMAC] authenticates control records (explicit
//     locks) under a key derived from the provider key.
//   - The key home: [DefaultHome] finds it, [CheckHome] refuses one inside
//     the data directory ([ErrHomeInsideData]; the CLI and the server both
//     call it).
//
// # Invariants
//
//   - Key material never appears in an error, a log line, a status or an
//     audit line.
//   - Provider calls made by a keyring are O(leases × time / lease), never
//     per Acquire, and concurrent re-validations of one wrapped key are one
//     call. During an outage they are O(time / RetryInterval) per keyring,
//     however many Opens are attempted.
//   - A lease whose deadline has passed without a successful re-validation
//     refuses Acquire, whatever its background goroutine is doing.
//   - Locking zeroes the key before OnLock callbacks run.
package keys

import (
	"context"
	"errors"
	"strconv"
)

// RootKeySize is the size in bytes of an instance root key.
const RootKeySize = 32

var (
	// ErrKeyRevoked reports that the wrapping key is revoked: access denied,
	// disabled, pending deletion, not found, invalid state or incorrect key.
	// An instance whose key is revoked locks.
	ErrKeyRevoked = errors.New("keys: key revoked or access denied")
	// ErrKeyUnavailable reports a transient failure to reach the provider
	// (throttling, timeouts, 5xx, network). It does not lock an instance until
	// its lease runs out.
	ErrKeyUnavailable = errors.New("keys: key provider unavailable")
	// ErrInvalidWrappedKey reports a wrapped key that is malformed or does
	// not belong to the given encryption context.
	ErrInvalidWrappedKey = errors.New("keys: wrapped key is invalid or belongs to another instance")
)

// EncryptionContext binds a wrapped root key to its owner. Every field goes
// into the provider's authenticated context (KMS's EncryptionContext).
type EncryptionContext struct {
	Org        string // organisation; empty for instances without one
	Instance   string // instance name
	Generation uint32 // key generation, starting at 1
}

// Map returns the context as KMS's string map.
func (ec EncryptionContext) Map() map[string]string {
	return map[string]string{
		"blindex:org":        ec.Org,
		"blindex:instance":   ec.Instance,
		"blindex:generation": strconv.FormatUint(uint64(ec.Generation), 10),
	}
}

// Provider wraps and unwraps instance root keys.
//
// Implementations MUST be safe for concurrent use, MUST NOT log or return key
// material in errors, and MUST classify failures: errors wrapping
// [ErrKeyRevoked] for revocation-class failures, [ErrKeyUnavailable] for
// transient ones.
type Provider interface {
	// GenerateRootKey returns a fresh random root key of RootKeySize bytes
	// and its wrapped form bound to ec.
	GenerateRootKey(ctx context.Context, ec EncryptionContext) (plaintext, wrapped []byte, err error)
	// UnwrapRootKey returns the root key wrapped in wrapped, which must have
	// been bound to ec.
	UnwrapRootKey(ctx context.Context, wrapped []byte, ec EncryptionContext) ([]byte, error)
	// KeyID names the wrapping key: a KMS key ARN, or "local:" and a
	// fingerprint of the local provider key. It is not secret.
	KeyID() string
}

// Zero overwrites b with zeros.
func Zero(b []byte) {
	clear(b)
}
