// Package index is blindex's engine: encrypted index instances that bleve's
// own query pipeline searches.
//
// # Entry points
//
//   - [Catalog] manages the encryption configurations and instances of one
//     store with the BYOK rules (one configuration per organisation, BYOK
//     fixed at creation, product families agree, region fixed), one keyring
//     per configuration (revoking a customer's key locks all of their
//     instances and nobody else's), lazily opened instances and
//     crypto-shredding deletes.
//   - [Instance] is one open instance: [Instance.Apply] (atomic batches of
//     index and delete operations), [Instance.IndexSynonym] (bleve's
//     synonym definitions, synonyms.go), [Instance.Search] (a bleve search
//     request in, bleve's search result out), [Instance.Get],
//     [Instance.Check], [Instance.Rotate] and [Instance.Reencrypt].
//   - [Create] and [Open] open an instance directly with a keyring.
//
// # How search works
//
// Documents are analyzed with bleve's own mapping and analyzers (package
// tokenize), so tokens are bleve's. Queries are parsed by bleve's parser and
// executed by bleve's searchers, scorers and collectors over a reader that
// implements bleve's index.IndexReader on top of sealed records: a term is
// blinded (HMAC under a per-field key) to find its posting blocks, which are
// opened and decoded on demand and cached while the instance is unlocked.
// Matching, BM25 scoring, sorting, facets and highlighting are therefore
// bleve's.
//
// # What is stored, and what it reveals
//
// Every record is sealed (package internal/seal) at a pseudorandom label:
// stored documents and forward indexes by document number, posting blocks
// by HMAC(HMAC(K_term(field), term), block number), small posting blocks of
// many terms together in packs, and the state (term dictionary, id map,
// document table, live set, thesauri of synonym sources) as a
// log-structured merge tree: a sealed log of
// per-batch changes replayed into a small memtable, and immutable runs of
// sealed pages (B+trees) read on demand through a byte-bounded cache, under
// a sealed head. Opening an instance reads the head and the short log,
// never anything proportional to its size (pages.go, compact.go). At
// rest the store reveals the number of instances, each instance's record
// count, padded value sizes (size classes of 1/8 of a power of two) and
// write times; not which records belong to the same term, document or
// field, nor any term, field name, id or content. Someone who compares two
// snapshots of the store over time also sees which records a batch wrote
// and which a merge or delete removed. The manifest (readable without any
// instance key) holds the instance's metadata and wrapped root keys only.
// A [Catalog] authenticates manifests, configurations and plans with a MAC
// under a key derived from the local provider key (package store/control),
// so whoever can write the store cannot forge or edit them; [Open] and
// [Create] on a store that is not a control.Store do not.
//
// Batches append each term's new postings as a new block; a background
// merger folds a term's blocks size tier by size tier (four of a tier into
// one), each round an atomic batch of its own, so often-updated terms stay
// in a few blocks without a batch ever waiting on older blocks.
//
// Attachments ([Instance.AddAttachment]) are streamed in chunks sealed with
// the STREAM construction (package internal/stream) and then as records;
// their text is indexed with their document. Their metadata (name, size,
// type, uploader) is sealed under a separate key wrapped by the local
// provider, not the BYOK key, so a locked instance can still list them.
//
// # What it does not hide
//
// While an instance is unlocked, its recent changes and the state pages
// and posting lists it recently used are decrypted in memory; locking (revocation, lease expiry,
// Close) zeroes the derived keys and drops them. The store's operator sees
// which labels a query reads. Rolling the whole store back to an older copy
// is not detected.
package index
