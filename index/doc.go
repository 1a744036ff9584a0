// Package index is blindex's engine: encrypted index instances in a store,
// with their write path, sealed records and state, merges, rotation,
// re-encryption and checks. Searching them is package query's, over the
// read view this package offers (package view).
//
// Start with [Create] or [Open] (an [Instance] in a store, with a
// keys.Keyring), or with package tenancy's Catalog, which manages the
// instances and encryption configurations of one store under the BYOK
// rules. Then [Instance.Apply] writes atomic batches of documents and
// deletes, [Instance.Get] reads a document back, and query.Search(ctx,
// instance, request) searches with a bleve request. The examples show the
// whole path. [Instance.AddAttachment] stores a file with a document
// (package attach describes attachments).
//
// At rest every record is sealed at a pseudorandom label: the store sees
// how many instances and records there are, padded sizes and write times,
// never a term, field name, id or content, nor which records belong
// together. While an instance is unlocked, what it recently used is
// decrypted in memory; locking it zeroes its keys. The notes at the top of
// doc.go, and DESIGN.md, say exactly what is hidden and what is not.
//
// The low-level API is the read view: [Instance.Snapshot] and the rest of
// view.Source (view.go), which package query reads instances through.
package index

// Notes on the engine (kept here rather than in the package documentation,
// which stays one screen long).
//
// # How search works
//
// Documents are analyzed with bleve's own mapping and analyzers (package
// tokenize; analyze.go adds the attachments' text), so tokens are bleve's.
// Queries are parsed by bleve's parser and executed by bleve's searchers,
// scorers and collectors (package query) over the read view of an instance
// (view.go, package view): a term's postings are looked up by its plaintext
// key (field, term) in the state — the memtable, then each run whose term
// filter may hold it — whose sealed pages and overflow chunks are opened on
// demand and cached while the instance is unlocked. Matching, BM25
// scoring, sorting, facets and highlighting are therefore bleve's.
//
// # What is stored, and what it reveals
//
// Every record is sealed (package internal/seal) at a pseudorandom label:
// stored documents and forward indexes by document number, and the state
// (term dictionary with each term's postings, id map, document table, live
// set, thesauri of synonym sources) as a log-structured merge tree: a
// sealed log of per-batch changes replayed into a small memtable, and
// immutable runs, each a B+tree of sealed pages at labels HMAC(K_snapshot,
// run id ‖ page number) with a term's postings inline in its leaf or, when
// long, in overflow chunks beside the pages, and a blocked Bloom filter
// over the run's terms, sealed in chunks too (pages.go, postings.go,
// filter.go). Pages are read on demand through a byte-bounded cache, under
// a sealed head. Opening an instance reads the head and the short log,
// never anything proportional to its size. A flush writes the memtable as
// a new run; runs merge four of a size tier into one (compact.go), so an
// instance has O(log n) runs and a batch never reads older postings. At
// rest the store reveals the number of instances, each instance's record
// count, padded value sizes (size classes of 1/8 of a power of two) and
// write times; not which records belong to the same term, document or
// field, nor any term, field name, id or content. Someone who compares two
// snapshots of the store over time also sees which records a batch wrote
// and which a merge or delete removed. The manifest (readable without any
// instance key) holds the instance's metadata and wrapped root keys only.
// The catalog (package tenancy) authenticates manifests, configurations
// and plans with a MAC under a key derived from the local provider key
// (package store/control), so whoever can write the store cannot forge or
// edit them; [Open] and [Create] on a store that is not a control.Store do
// not.
//
// Attachments ([Instance.AddAttachment]; their records in package attach)
// are streamed in chunks sealed with the STREAM construction (package
// internal/stream) and then as records; their text is indexed with their
// document. Their metadata (name, size, type, uploader) is sealed under a
// separate key wrapped by the local provider, not the BYOK key, so a
// locked instance can still list them.
//
// # What it does not hide
//
// While an instance is unlocked, its recent changes and the state pages
// and posting lists it recently used are decrypted in memory; locking (revocation, lease expiry,
// Close) zeroes the derived keys and drops them. The store's operator sees
// which labels a query reads. Rolling the whole store back to an older copy
// is not detected.
