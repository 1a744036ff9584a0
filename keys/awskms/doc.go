// Package awskms is the AWS KMS [keys.Provider]: the customer's KMS key
// (bring your own key) wraps each instance root key.
//
// [New] builds a KMS client with the standard AWS configuration chain
// (config.LoadDefaultConfig: environment variables, the shared config and
// credentials files, profiles, AWS_ENDPOINT_URL_KMS), with the region and,
// optionally, the endpoint forced by [Options].
//
//   - GenerateRootKey is KMS GenerateDataKey with KeySpec AES_256.
//   - UnwrapRootKey is KMS Decrypt.
//
// Both always name the key (KeyId is the configured key ARN, so a ciphertext
// under another key is refused rather than silently decrypted) and always
// send the instance's encryption context ([keys.EncryptionContext.Map]), so
// the customer's CloudTrail shows which instance used their key, and a
// wrapped key unwraps only for the instance and generation it was made for.
//
// # Error classes
//
// Every error wraps one of the keys sentinels, chosen from the KMS error
// code (errors.As on smithy.APIError) or, when there is none, from the
// transport failure:
//
//	revoked (keys.ErrKeyRevoked):
//	  AccessDeniedException, DisabledException, KMSInvalidStateException
//	  (pending deletion, pending import, a disconnected custom key store),
//	  NotFoundException, InvalidKeyUsageException
//	revoked and invalid (keys.ErrKeyRevoked and keys.ErrInvalidWrappedKey):
//	  IncorrectKeyException, InvalidCiphertextException — KMS refuses this
//	  ciphertext (another key, another context, or tampered); keys.Classify
//	  reports these as ClassInvalid, and a Keyring locks only the lease of
//	  that wrapped key
//	invalid only (keys.ErrInvalidWrappedKey):
//	  ValidationException — the request itself is malformed (e.g. an
//	  oversized ciphertext); not the customer's doing
//	unavailable (keys.ErrKeyUnavailable), retried with backoff first:
//	  ThrottlingException, KMSInternalException, DependencyTimeoutException,
//	  KeyUnavailableException, any HTTP 5xx, timeouts, connection errors,
//	  and every other code (credential errors such as
//	  UnrecognizedClientException or ExpiredTokenException included: they
//	  are the operator's problem, not the customer revoking, and a lease
//	  still locks when it runs out)
//
// KeyUnavailableException is AWS's "the KMS key is not available, you can
// retry" (typically a custom key store that cannot be reached): it is an
// outage, not a revocation. A customer who disconnects a custom key store
// to revoke gets KMSInvalidStateException, which is revocation.
//
// Error messages carry the operation, the KMS error code, the HTTP status
// and the request id; never KMS's own message (which may quote the request),
// key bytes or ciphertexts. [*Error] gives callers the code.
//
// The plaintext keys returned belong to the caller, who zeroes them. The
// SDK's own response buffers, which held the key in base64 while decoding,
// cannot be reached to be zeroed; they are garbage once the call returns.
//
// # Retries, timeouts, concurrency
//
// Each call is retried up to Options.MaxAttempts times with the SDK's
// standard retryer (exponential backoff with full jitter, capped at 2 s; a
// client-side retry budget stops retry storms during long outages).
// Options.Timeout bounds each attempt; the whole call is bounded by the
// caller's context. At most Options.MaxConcurrent calls are in flight at
// once; others wait (or fail when their context ends).
//
// # Residency
//
// The key ARN's region must equal Options.Region: KMS calls stay in the
// configuration's region, and a mismatch is refused by New.
package awskms
