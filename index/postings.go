package index

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
)

// Postings live in the state tree, as scorch keeps them in its segments: a
// term's key in each run holds the postings of the documents that run
// covers, and the memtable holds those of the batches since the last
// flush, one fragment per batch. A term's postings are its fragments
// concatenated, oldest first (document numbers only grow, and runs merge
// only with their neighbours, so fragments do not overlap). Merging runs
// concatenates a term's fragments and drops the postings of deleted
// documents. A batch therefore writes its postings without reading any
// older ones.
//
// A term value is
//
//	valPresent ‖ uvarint(postings) ‖ encodePostingBody(field, postings)
//
// The key names the field and term; the page that holds it is
// authenticated with its label, and an overflow chunk with its run and
// number, so the value need not repeat them.
//
// or, in a run, when longer than maxInlineValue, an overflow reference
// (see runBuilder.spill) to chunks sealed beside the run's pages.

// isTermKey reports whether a state key is a term key.
func isTermKey(k string) bool { return len(k) > 0 && k[0] == 't' }

// splitFieldTermKey is the inverse of fieldTermKey.
func splitFieldTermKey(k string) (field, term string, ok bool) {
	if !isTermKey(k) {
		return "", "", false
	}
	n, w := binary.Uvarint([]byte(k[1:min(len(k), 1+binary.MaxVarintLen64)]))
	if w <= 0 || uint64(len(k)-1-w) < n {
		return "", "", false
	}
	f := 1 + w + int(n)
	return k[1+w : f], k[f:], true
}

// encodeTermValue encodes a term's postings as a state value.
func encodeTermValue(field string, term []byte, pl *postingList) []byte {
	e := enc{b: make([]byte, 0, 24+len(field)+len(term)+len(pl.docs)*6+len(pl.locs)*8)}
	e.byte1(valPresent)
	e.uvarint(uint64(len(pl.docs)))
	encodePostingBody(&e, field, pl)
	return e.b
}

// termValue decodes a term value of a run (present or overflow) into its
// postings, checking that they belong to field/term; without locs it
// leaves their locations out (decodePostings).
func (in *Instance) termValue(field string, term []byte, v []byte, locs locMode) (*postingList, error) {
	count, body, err := in.termBody(v)
	if err != nil {
		return nil, err
	}
	bd := dec{b: body}
	pl := decodePostings(&bd, field, locs)
	err = bd.done()
	if err == nil && uint64(len(pl.docs)) != count {
		err = fmt.Errorf("%w: a term value holds %d postings, its count says %d", errShort, len(pl.docs), count)
	}
	if err != nil {
		return nil, in.corruptTermValue(err)
	}
	return pl, nil
}

// termBody returns the posting count and the encoded postings
// (encodePostingBody) of a term value, reading its overflow chunks when it
// has them.
func (in *Instance) termBody(v []byte) (uint64, []byte, error) {
	if len(v) == 0 {
		return 0, nil, in.corruptTermValue(errShort)
	}
	d := dec{b: v[1:]}
	count := d.uvarint()
	switch v[0] {
	case valPresent:
		if d.err != nil {
			return 0, nil, in.corruptTermValue(errShort)
		}
		return count, d.b, nil
	case valOverflow:
	default:
		return 0, nil, in.corruptTermValue(errShort)
	}
	run, gen := d.uvarint(), d.u32()
	first, n, length := d.uvarint(), d.uvarint(), d.uvarint()
	if err := d.done(); err != nil || n == 0 || first+n > innerBase-overflowBase || length > n*overflowChunk {
		return 0, nil, in.corruptTermValue(errShort)
	}
	k, err := in.keysFor(gen)
	if err != nil {
		return 0, nil, err
	}
	body := make([]byte, 0, length)
	nos := make([]uint32, n)
	for i := range nos {
		nos[i] = overflowBase + uint32(first) + uint32(i)
	}
	pts, labels, err := in.openPages(k, run, nos, kindPosting) // one store read (readahead.go)
	if err != nil {
		return 0, nil, err
	}
	for i, pt := range pts {
		in.m.chunkReads.Add(1)
		part, err := decodeChunk(pt, kindPosting, run, nos[i])
		if err != nil {
			return 0, nil, in.corrupt(kindPosting, labels[i], err)
		}
		body = append(body, part...)
	}
	if uint64(len(body)) != length {
		return 0, nil, in.corruptTermValue(errShort)
	}
	return count, body, nil
}

// errMalformedBody is a posting body that does not parse.
var errMalformedBody = fmt.Errorf("%w: a malformed posting body", errShort)

// bodyParts are the sections of an encoded posting body (see
// encodePostingBody) that spliceBodies joins.
type bodyParts struct {
	flags   byte
	n       uint64
	triples []byte // (doc delta, freq, len) per posting
	first   uint64 // the first and last document numbers
	last    uint64
	names   []byte   // the location field name table, when flags&1
	nameSet []string // its names
	locs    []byte   // the locations, when flags&1
}

// splitBody parses an encoded posting body of count postings into its
// sections; ok is false when a document is not live. A malformed body is
// errMalformedBody.
func splitBody(body []byte, count uint64, isLive func(doc uint64) (bool, error)) (p bodyParts, ok bool, err error) {
	d := dec{b: body}
	p.flags = d.byte1()
	n := d.count(3)
	start := len(body) - len(d.b)
	var doc uint64
	for i := 0; i < n && d.err == nil; i++ {
		delta := d.uvarint()
		d.uvarint()
		d.uvarint()
		if d.err != nil || (i > 0 && delta == 0) {
			d.fail()
			break
		}
		doc += delta
		if i == 0 {
			p.first = doc
		}
		live, err := isLive(doc)
		if err != nil || !live {
			return p, false, err
		}
	}
	if d.err != nil || uint64(n) != count || n == 0 || p.flags > 1 {
		return p, false, errMalformedBody
	}
	p.n, p.last = uint64(n), doc
	off := len(body) - len(d.b)
	p.triples = body[start:off]
	if p.flags&1 != 0 {
		nn := d.count(1)
		for range nn {
			p.nameSet = append(p.nameSet, d.str())
		}
		if d.err != nil {
			return p, false, errMalformedBody
		}
		p.names = body[off : len(body)-len(d.b)]
		p.locs = d.b
	} else if len(d.b) != 0 {
		return p, false, errMalformedBody
	}
	return p, true, nil
}

// spliceBodies joins the posting bodies of parts (oldest first) into one
// term value without decoding them: their sections are concatenated, each
// one's first document delta taken again from the previous part's last
// document, and the location field name tables joined (a part whose names
// take other numbers in the joined table has its locations' references
// rewritten). ok is false when the parts cannot be joined so (their
// documents overlap or their flags differ).
func spliceBodies(parts []bodyParts) (v []byte, ok bool) {
	var n uint64
	size := 24
	sameNames := true
	for i, p := range parts {
		if p.flags != parts[0].flags || (i > 0 && p.first <= parts[i-1].last) {
			return nil, false
		}
		sameNames = sameNames && string(p.names) == string(parts[0].names)
		n += p.n
		size += len(p.triples) + len(p.locs) + len(p.names)
	}
	e := enc{b: make([]byte, 0, size)}
	e.byte1(valPresent)
	e.uvarint(n)
	e.byte1(parts[0].flags)
	e.uvarint(n)
	for i, p := range parts {
		if i == 0 {
			e.b = append(e.b, p.triples...)
			continue
		}
		_, w := binary.Uvarint(p.triples)
		e.uvarint(p.first - parts[i-1].last)
		e.b = append(e.b, p.triples[w:]...)
	}
	if parts[0].flags&1 == 0 {
		return e.b, true
	}
	if sameNames {
		e.b = append(e.b, parts[0].names...)
		for _, p := range parts {
			e.b = append(e.b, p.locs...)
		}
		return e.b, true
	}
	// The joined table: the names in the order the locations first use
	// them, as encodePostingBody numbers them.
	var names []string
	for _, p := range parts {
		for _, nm := range p.nameSet {
			if !slices.Contains(names, nm) {
				names = append(names, nm)
			}
		}
	}
	e.uvarint(uint64(len(names)))
	for _, nm := range names {
		e.str(nm)
	}
	for _, p := range parts {
		remap := make([]uint64, len(p.nameSet)+1)
		same := true
		for j, nm := range p.nameSet {
			remap[j+1] = uint64(slices.Index(names, nm) + 1)
			same = same && remap[j+1] == uint64(j+1)
		}
		if same {
			e.b = append(e.b, p.locs...)
			continue
		}
		if !rewriteLocRefs(&e, p.locs, p.n, remap) {
			return nil, false
		}
	}
	return e.b, true
}

// rewriteLocRefs appends the locations of n postings (see
// encodePostingBody) to e with each field reference r replaced by
// remap[r]; false when they do not parse.
func rewriteLocRefs(e *enc, locs []byte, n uint64, remap []uint64) bool {
	d := dec{b: locs}
	for range n {
		nl := d.count(5)
		e.uvarint(uint64(nl))
		for range nl {
			ref := d.uvarint()
			if ref >= uint64(len(remap)) {
				return false
			}
			e.uvarint(remap[ref])
			e.uvarint(d.uvarint()) // position
			e.uvarint(d.uvarint()) // start
			e.uvarint(d.uvarint()) // length
			na := d.count(1)
			e.uvarint(uint64(na))
			for range na {
				e.uvarint(d.uvarint())
			}
		}
	}
	return d.err == nil && len(d.b) == 0
}

func (in *Instance) corruptTermValue(err error) error {
	in.m.corrupt.Add(1)
	return &CorruptError{Kind: kindName(kindPage), Err: fmt.Errorf("a state page holds a malformed term value: %w", err)}
}

// postingIdentity returns the field and term an encoded posting list
// names.
func postingIdentity(b []byte) (string, []byte, error) {
	d := dec{b: b}
	if d.byte1() != kindPosting {
		return "", nil, errShort
	}
	f, t := d.bytes(), d.bytes()
	if d.err != nil {
		return "", nil, errShort
	}
	return string(f), t, nil
}

// concatFragments returns the postings of fragments (oldest first) as one
// list in document order.
func concatFragments(frags []*postingList) *postingList {
	switch len(frags) {
	case 0:
		return &postingList{}
	case 1:
		return frags[0]
	}
	order := fragmentOrder(frags)
	out := &postingList{docs: make([]uint64, 0, len(order)), freqs: make([]uint32, 0, len(order)), lens: make([]uint32, 0, len(order))}
	for _, r := range order {
		out.appendFrom(frags[r.f], r.j)
	}
	return out
}

// concatEncoded is concatFragments for a search that needs locations: the
// fragments' locations are (or are made) encoded (postingList.vectors) and
// joined under one table of field names.
func concatEncoded(field string, frags []*postingList) *postingList {
	vectors := false
	frags = slices.Clone(frags) // made encoded in place of the caller's
	for i, f := range frags {
		frags[i] = f.withEncodedVectors(field)
		vectors = vectors || frags[i].vectors != nil
	}
	if len(frags) == 1 || !vectors {
		return concatFragments(frags)
	}
	// Each fragment's field references, remapped into the joined table.
	var names []string
	remaps := make([][]uint64, len(frags))
	identity := make([]bool, len(frags))
	for i, f := range frags {
		if f.vectors == nil {
			continue
		}
		remap := make([]uint64, len(f.vectors.names)+1)
		identity[i] = true
		for k, name := range f.vectors.names {
			j := slices.Index(names, name)
			if j < 0 {
				names = append(names, name)
				j = len(names) - 1
			}
			remap[k+1] = uint64(j + 1)
			identity[i] = identity[i] && j == k
		}
		remaps[i] = remap
	}
	order := fragmentOrder(frags)
	out := &postingList{docs: make([]uint64, 0, len(order)), freqs: make([]uint32, 0, len(order)), lens: make([]uint32, 0, len(order))}
	v := &encodedVectors{field: field, names: names, off: make([]uint32, 1, len(order)+1)}
	e := enc{}
	for _, r := range order {
		f := frags[r.f]
		out.docs = append(out.docs, f.docs[r.j])
		out.freqs = append(out.freqs, f.freqs[r.j])
		out.lens = append(out.lens, f.lens[r.j])
		switch fv := f.vectors; {
		case fv == nil:
			e.uvarint(0)
		case identity[r.f]:
			e.b = append(e.b, fv.data[fv.off[r.j]:fv.off[r.j+1]]...)
		default:
			rewriteLocRefs(&e, fv.data[fv.off[r.j]:fv.off[r.j+1]], 1, remaps[r.f]) // scanned: parses
		}
		v.off = append(v.off, uint32(len(e.b)))
	}
	v.data = slices.Clip(e.b)
	out.vectors = v
	return out
}

// fragRef is a posting of a fragment: fragment f's j-th.
type fragRef struct{ f, j int }

// fragmentOrder returns the postings of frags in document order (the
// order of the fragments when they do not overlap, as they do not unless
// a document was written twice).
func fragmentOrder(frags []*postingList) []fragRef {
	n, sorted := 0, true
	var last uint64
	for i, f := range frags {
		if len(f.docs) == 0 {
			continue
		}
		if i > 0 && n > 0 && f.docs[0] <= last {
			sorted = false
		}
		n += len(f.docs)
		last = f.docs[len(f.docs)-1]
	}
	refs := make([]fragRef, 0, n)
	for i, f := range frags {
		for j := range f.docs {
			refs = append(refs, fragRef{i, j})
		}
	}
	if !sorted {
		slices.SortStableFunc(refs, func(a, b fragRef) int {
			return cmp.Compare(frags[a.f].docs[a.j], frags[b.f].docs[b.j])
		})
	}
	return refs
}

// liveOnly returns pl without the postings of documents that are not
// live.
func liveOnly(pl *postingList, live *liveSet) (*postingList, error) {
	var out *postingList // nil while every posting so far is live
	for j, d := range pl.docs {
		ok, err := live.isLive(d)
		if err != nil {
			return nil, err
		}
		switch {
		case !ok && out == nil:
			out = &postingList{}
			for k := range j {
				out.appendFrom(pl, k)
			}
		case ok && out != nil:
			out.appendFrom(pl, j)
		}
	}
	if out == nil {
		return pl, nil
	}
	return out, nil
}

// allLive reports whether every document of an inline term value is live,
// decoding only the document numbers.
func allLive(v []byte, live *liveSet) (bool, error) {
	d := dec{b: v[1:]}
	d.uvarint() // postings
	d.byte1()   // flags
	n := d.count(3)
	var doc uint64
	for i := 0; i < n && d.err == nil; i++ {
		doc += d.uvarint()
		d.uvarint()
		d.uvarint()
		if d.err != nil {
			break
		}
		ok, err := live.isLive(doc)
		if err != nil || !ok {
			return false, err
		}
	}
	return d.err == nil, d.err
}
