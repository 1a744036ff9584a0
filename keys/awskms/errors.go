package awskms

import (
	"errors"
	"fmt"
	"strings"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/blindex/blindex/keys"
)

// Error is a failed KMS call. It wraps [keys.ErrKeyRevoked],
// [keys.ErrKeyUnavailable] or [keys.ErrInvalidWrappedKey] (the last also
// with ErrKeyRevoked for a ciphertext KMS refuses); see the package
// documentation for the classes. It never
// holds KMS's message, key bytes or ciphertexts.
type Error struct {
	Op         string // GenerateDataKey or Decrypt
	Code       string // the KMS error code, e.g. "DisabledException"; "" for transport failures
	HTTPStatus int    // 0 when no response arrived
	RequestID  string // AWS request id, for support cases
	Detail     string // a fixed description, for failures found by this package

	class   error // keys.ErrKeyRevoked, keys.ErrKeyUnavailable or keys.ErrInvalidWrappedKey
	invalid bool  // also keys.ErrInvalidWrappedKey
	cause   error // transport failure (no API error): timeouts, connection errors
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("awskms: ")
	b.WriteString(e.Op)
	b.WriteString(": ")
	if e.Code != "" {
		b.WriteString(e.Code)
		b.WriteString(": ")
	}
	if e.Detail != "" {
		b.WriteString(e.Detail)
		b.WriteString(": ")
	}
	if e.cause != nil {
		b.WriteString(e.cause.Error())
		b.WriteString(": ")
	}
	b.WriteString(e.class.Error())
	if e.invalid {
		b.WriteString(" (")
		b.WriteString(keys.ErrInvalidWrappedKey.Error())
		b.WriteString(")")
	}
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, " [HTTP %d", e.HTTPStatus)
		if e.RequestID != "" {
			b.WriteString(", request id ")
			b.WriteString(e.RequestID)
		}
		b.WriteString("]")
	}
	return b.String()
}

// Unwrap returns the keys sentinels the error belongs to and, for transport
// failures, the cause (so errors.Is(err, context.DeadlineExceeded) works).
func (e *Error) Unwrap() []error {
	errs := []error{e.class}
	if e.invalid {
		errs = append(errs, keys.ErrInvalidWrappedKey)
	}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

// revokedCodes are the KMS error codes that mean the key cannot be used by
// us any more: the customer revoked it (or is deleting it).
var revokedCodes = map[string]bool{
	"AccessDeniedException":    true,
	"DisabledException":        true,
	"KMSInvalidStateException": true,
	"NotFoundException":        true,
	"InvalidKeyUsageException": true,
}

// invalidCodes are the KMS error codes that refuse one ciphertext: it was
// made under another key or context, or was altered. They are revocation
// class (fail closed), and also ErrInvalidWrappedKey.
var invalidCodes = map[string]bool{
	"IncorrectKeyException":      true,
	"InvalidCiphertextException": true,
}

// requestCodes are the KMS error codes that refuse the request itself: for
// Decrypt, a malformed ciphertext or context. They say nothing about the
// key, so they are ErrInvalidWrappedKey only.
var requestCodes = map[string]bool{
	"ValidationException": true,
}

// classify turns an SDK error into an *Error. Everything that is not a
// revocation code is unavailable (transient), including
// KeyUnavailableException (see the package documentation).
func classify(op string, err error) error {
	e := &Error{Op: op, class: keys.ErrKeyUnavailable}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		e.HTTPStatus = re.HTTPStatusCode()
		e.RequestID = re.ServiceRequestID()
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		e.Code = ae.ErrorCode()
		switch {
		case revokedCodes[e.Code]:
			e.class = keys.ErrKeyRevoked
		case invalidCodes[e.Code]:
			e.class, e.invalid = keys.ErrKeyRevoked, true
		case requestCodes[e.Code]:
			e.class = keys.ErrInvalidWrappedKey
		}
		return e
	}
	// No API error: a transport failure or a cancelled context. Their text
	// names at most the endpoint; keep them for errors.Is.
	e.cause = err
	return e
}
