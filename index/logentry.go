package index

// The state log: each batch's changes to the state, sealed as one entry
// (in one or more records) before they reach the memtable, replayed at open
// until the next flush.

import (
	"errors"
	"slices"

	"github.com/blindex/blindex/internal/seal"
)

// docAdd is a document added by a log entry.
type docAdd struct {
	num uint64
	id  string
	gen uint32
}

// termPostings is one term's postings of the documents a batch added.
type termPostings struct {
	field string
	term  string
	pl    *postingList
}

// logEntry is one committed batch's change to the state.
type logEntry struct {
	seq     uint64
	added   []docAdd
	deleted []uint64
	terms   []termPostings
	nextDoc uint64
	kv      []kvSet // changes to the key kinds of other files (synonyms.go)
}

// kvSet sets a state key of a kind another file owns; an empty val removes it.
type kvSet struct {
	key string
	val []byte
}

func encodeLog(l *logEntry) []byte {
	e := enc{}
	e.byte1(kindLog)
	e.uvarint(l.seq)
	e.uvarint(l.nextDoc)
	e.uvarint(uint64(len(l.added)))
	for _, a := range l.added {
		e.uvarint(a.num)
		e.str(a.id)
		e.u32(a.gen)
	}
	e.uvarint(uint64(len(l.deleted)))
	for _, d := range l.deleted {
		e.uvarint(d)
	}
	e.uvarint(uint64(len(l.terms)))
	for _, t := range l.terms {
		e.bytes(encodePosting(t.field, []byte(t.term), t.pl))
	}
	if len(l.kv) > 0 { // optional, so that logs written before it decode
		e.uvarint(uint64(len(l.kv)))
		for _, x := range l.kv {
			e.str(x.key)
			e.bytes(x.val)
		}
	}
	return e.b
}

func decodeLog(b []byte, seq uint64) (*logEntry, error) {
	d := dec{b: b}
	if d.byte1() != kindLog {
		return nil, errShort
	}
	l := &logEntry{seq: d.uvarint(), nextDoc: d.uvarint()}
	if d.err == nil && l.seq != seq {
		return nil, errIdentity
	}
	l.added = make([]docAdd, d.count(6))
	for i := range l.added {
		l.added[i] = docAdd{num: d.uvarint(), id: d.str(), gen: d.u32()}
		if l.added[i].id == "" {
			d.fail() // ids are never empty; "" means "not live" in the state
		}
	}
	l.deleted = make([]uint64, d.count(1))
	for i := range l.deleted {
		l.deleted[i] = d.uvarint()
	}
	l.terms = make([]termPostings, d.count(4))
	for i := range l.terms {
		b := d.bytes()
		if d.err != nil {
			break
		}
		field, term, err := postingIdentity(b)
		if err != nil {
			return nil, err
		}
		pl, err := decodePosting(b, field, term)
		if err != nil {
			return nil, err
		}
		if len(pl.docs) == 0 || (i > 0 && fieldTermKey(field, string(term)) <= fieldTermKey(l.terms[i-1].field, l.terms[i-1].term)) {
			return nil, errShort
		}
		l.terms[i] = termPostings{field: field, term: string(term), pl: pl}
	}
	if d.err == nil && len(d.b) > 0 {
		l.kv = make([]kvSet, d.count(2))
		if len(l.kv) == 0 {
			d.fail() // an empty section is never written
		}
		for i := range l.kv {
			l.kv[i] = kvSet{key: d.str(), val: d.bytes()}
			if len(l.kv[i].val) == 0 {
				l.kv[i].val = nil
			}
		}
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	return l, nil
}

// encodeLogHead encodes the first record of a log entry written as pieces
// records: the entry's first part; the others are chunks at
// chunkLabel(PurposeLog, seq, i).
func encodeLogHead(seq uint64, pieces uint32, part []byte) []byte {
	e := enc{b: make([]byte, 0, len(part)+24)}
	e.byte1(kindLog)
	e.uvarint(seq)
	e.uvarint(uint64(pieces))
	e.bytes(part)
	return e.b
}

// readLog reads log entry seq, every piece of it, under k, and returns it
// with its number of pieces.
func (in *Instance) readLog(k *seal.Keys, seq uint64) (*logEntry, uint32, error) {
	label := k.LabelUint(seal.PurposeLog, seq)
	pt, err := in.openRecord(k, label, kindLog)
	if errors.Is(err, ErrNotFound) {
		err = in.corrupt(kindLog, label, errors.New("missing"))
	}
	if err != nil {
		return nil, 0, err
	}
	d := dec{b: pt}
	if d.byte1() != kindLog {
		return nil, 0, in.corrupt(kindLog, label, errShort)
	}
	gotSeq, pieces := d.uvarint(), d.uvarint()
	body := d.bytes()
	if err := d.done(); err != nil {
		return nil, 0, in.corrupt(kindLog, label, err)
	}
	if gotSeq != seq || pieces == 0 || pieces > 1<<20 {
		return nil, 0, in.corrupt(kindLog, label, errIdentity)
	}
	body = slices.Clone(body)
	for i := uint32(1); i < uint32(pieces); i++ {
		cl := chunkLabel(k, seal.PurposeLog, seq, i)
		cp, err := in.openRecord(k, cl, kindLog)
		if errors.Is(err, ErrNotFound) {
			err = in.corrupt(kindLog, cl, errors.New("missing"))
		}
		if err != nil {
			return nil, 0, err
		}
		part, err := decodeChunk(cp, kindLog, seq, i)
		if err != nil {
			return nil, 0, in.corrupt(kindLog, cl, err)
		}
		body = append(body, part...)
	}
	l, err := decodeLog(body, seq)
	if err != nil {
		return nil, 0, in.corrupt(kindLog, label, err)
	}
	return l, uint32(pieces), nil
}

// logLabels returns the labels of every record of log entry seq.
func logLabels(k *seal.Keys, seq uint64, pieces uint32) [][seal.LabelSize]byte {
	out := [][seal.LabelSize]byte{k.LabelUint(seal.PurposeLog, seq)}
	for i := uint32(1); i < pieces; i++ {
		out = append(out, chunkLabel(k, seal.PurposeLog, seq, i))
	}
	return out
}
