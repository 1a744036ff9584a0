//go:build !linux

package main

// disableCoreDumps does nothing outside Linux: there, keep core dumps off
// by the system's own configuration (e.g. ulimit -c 0).
func disableCoreDumps() error { return nil }
