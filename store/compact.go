package store

// Compacter is implemented by stores that can reclaim, when asked, the
// space of the records deleted under a prefix, rather than whenever their
// own background work reaches them (Pebble: a manual compaction of the
// prefix's key range). An instance asks after a merge has deleted much of
// what it held, so that an idle instance does not keep its old runs on disk.
// Stores that wrap another forward it (CompactPrefix).
type Compacter interface {
	// CompactPrefix rewrites the records under prefix without those
	// deleted. It changes no record's value and is safe beside reads and
	// writes.
	CompactPrefix(prefix []byte) error
}

// CompactPrefix asks st to reclaim the space of the records deleted under
// prefix when st is a Compacter; otherwise it does nothing.
func CompactPrefix(st Store, prefix []byte) error {
	if c, ok := st.(Compacter); ok {
		return c.CompactPrefix(prefix)
	}
	return nil
}
