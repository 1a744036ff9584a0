package keys

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// ErrInvalidContext reports an [EncryptionContext] that cannot be used: an
// empty instance, generation 0, or a field that is not valid UTF-8 or is
// longer than [MaxContextField] bytes. It is reported before any provider
// call.
var ErrInvalidContext = errors.New("keys: invalid encryption context")

// MaxContextField is the largest Org or Instance, in bytes, that an
// [EncryptionContext] may hold. It keeps the context well within KMS's limit
// on encryption-context size.
const MaxContextField = 1024

// Validate reports whether ec can bind a wrapped key: Instance is not empty,
// Generation is at least 1, and Org and Instance are valid UTF-8 of at most
// [MaxContextField] bytes. The error wraps [ErrInvalidContext] and names the
// field, never its value.
func (ec EncryptionContext) Validate() error {
	switch {
	case ec.Instance == "":
		return fmt.Errorf("%w: empty instance", ErrInvalidContext)
	case ec.Generation == 0:
		return fmt.Errorf("%w: generation 0 (generations start at 1)", ErrInvalidContext)
	case len(ec.Org) > MaxContextField || !utf8.ValidString(ec.Org):
		return fmt.Errorf("%w: org is not valid UTF-8 of at most %d bytes", ErrInvalidContext, MaxContextField)
	case len(ec.Instance) > MaxContextField || !utf8.ValidString(ec.Instance):
		return fmt.Errorf("%w: instance is not valid UTF-8 of at most %d bytes", ErrInvalidContext, MaxContextField)
	}
	return nil
}

// AppendCanonical appends an unambiguous binary encoding of ec to b and
// returns the extended slice: a 4-byte big-endian length and the bytes of Org,
// the same for Instance, then Generation as 4 bytes big-endian. Providers
// that authenticate the context themselves (the local provider's additional
// data) use it; two different contexts never encode the same.
func (ec EncryptionContext) AppendCanonical(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(ec.Org)))
	b = append(b, ec.Org...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(ec.Instance)))
	b = append(b, ec.Instance...)
	return binary.BigEndian.AppendUint32(b, ec.Generation)
}

// ErrorClass names the class of a provider failure, as it appears in the
// audit log and in [Status].
type ErrorClass string

// Error classes, as returned by [Classify].
const (
	// ClassNone is the class of a nil error.
	ClassNone ErrorClass = ""
	// ClassRevoked is a revocation-class failure ([ErrKeyRevoked]): the
	// wrapping key is disabled, pending deletion, not found, or access to it
	// is denied.
	ClassRevoked ErrorClass = "revoked"
	// ClassUnavailable is a transient failure ([ErrKeyUnavailable], and any
	// error a provider did not classify).
	ClassUnavailable ErrorClass = "unavailable"
	// ClassInvalid is a failure specific to one wrapped key or context
	// ([ErrInvalidWrappedKey], [ErrInvalidContext]): tampered, truncated,
	// bound to another context, or wrapped under another key. It says
	// nothing about the wrapping key as a whole.
	ClassInvalid ErrorClass = "invalid"
)

// Classify returns the class of a provider error. [ErrInvalidWrappedKey] and
// [ErrInvalidContext] win over [ErrKeyRevoked] (a provider may report both
// for a ciphertext KMS refuses); an error that matches no sentinel is
// [ClassUnavailable], so that an unexpected failure is treated as transient
// and, at worst, locks when the lease runs out.
func Classify(err error) ErrorClass {
	switch {
	case err == nil:
		return ClassNone
	case errors.Is(err, ErrInvalidWrappedKey), errors.Is(err, ErrInvalidContext):
		return ClassInvalid
	case errors.Is(err, ErrKeyRevoked):
		return ClassRevoked
	default:
		return ClassUnavailable
	}
}
