//go:build !unix

package kmstest

// lockFile does not lock where flock is missing: concurrent test binaries
// may then build local-kms twice, and the rename keeps one.
func lockFile(string) (func(), error) { return func() {}, nil }
