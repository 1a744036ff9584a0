package index

import (
	"bytes"
	"encoding/hex"
	"math"
	"reflect"
	"testing"

	bindex "github.com/blevesearch/bleve_index_api"

	"github.com/blindex/blindex/internal/seal"
)

// Known-answer vectors for the engine's record layout: the labels the
// engine computes for each kind of record from a fixed root key, the record
// key layout, and every payload codec. They were computed once from this
// implementation and pasted (internal/seal's vectors were also checked
// against an independent implementation). A failing vector means the
// on-disk format changed: bump FormatVersion, never the vector.

func katKeys(t testing.TB) *seal.Keys {
	t.Helper()
	root := make([]byte, 32)
	for i := range root {
		root[i] = byte(i)
	}
	k, err := seal.Derive(root, 1)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var katPrefix = []byte{0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7}

func TestKnownAnswerEngineLabels(t *testing.T) {
	k := katKeys(t)
	for _, v := range []struct {
		name  string
		label [seal.LabelSize]byte
		want  string
	}{
		{"head", k.Label(seal.PurposeHead), "3984546ea60287dc21db2f4bf2bded97"},
		{"internal mapping", k.Label(seal.PurposeInternal, []byte("mapping")), "a1a004675e7a0df9c4b7c5d7a00fd549"},
		{"log 0", k.LabelUint(seal.PurposeLog, 0), "0515410714272893cf2ba917a677ba18"},
		{"log 1", k.LabelUint(seal.PurposeLog, 1), "90a2f24e5feb37a97171363cf3439c47"},
		{"doc 0", k.LabelUint(seal.PurposeDoc, 0), "6efe30d8c783de3fe176ad038300bd28"},
		{"doc 1", k.LabelUint(seal.PurposeDoc, 1), "b84b2dec29f59c5b3a56af624fc97060"},
		{"forward 0", k.LabelUint(seal.PurposeForward, 0), "1d7f595a25d8d7cc39ea36ed899ec70d"},
		{"snapshot 7 chunk 0", chunkLabel(k, seal.PurposeSnapshot, 7, 0), "787232c60ab20688fdf85cf4085fec02"},
		{"snapshot 7 chunk 1", chunkLabel(k, seal.PurposeSnapshot, 7, 1), "1a50e888ab8a74f97e43f68fe0e98042"},
	} {
		if got := hex.EncodeToString(v.label[:]); got != v.want {
			t.Errorf("%s label = %s, want %s", v.name, got, v.want)
		}
	}
	// The record key layout: 0x01 ‖ instance prefix (8) ‖ label (16).
	key := recordKey(katPrefix, k.Label(seal.PurposeHead))
	if got, want := hex.EncodeToString(key), "01a0a1a2a3a4a5a6a7"+"3984546ea60287dc21db2f4bf2bded97"; got != want {
		t.Errorf("record key = %s, want %s", got, want)
	}
	if got, want := string(manifestKey("acme")), "\x00Macme"; got != want {
		t.Errorf("manifest key = %q, want %q", got, want)
	}
}

// katPosting is a posting list with term vectors, array positions and a
// location in another field (as _all's composite locations have).
func katPosting() *postingList {
	return &postingList{
		docs:   []uint64{3, 4, 300},
		freqs:  []uint32{1, 2, 1},
		lens:   []uint32{7, 12, 1},
		locOff: []uint32{0, 1, 3, 4},
		locs: []bindex.TermFieldVector{
			{Field: "summary", Pos: 2, Start: 6, End: 11},
			{Field: "comments.body", ArrayPositions: []uint64{0}, Pos: 1, Start: 0, End: 5},
			{Field: "comments.body", ArrayPositions: []uint64{2}, Pos: 9, Start: 40, End: 45},
			{Field: "summary", Pos: 1, Start: 0, End: 5},
		},
	}
}

func TestKnownAnswerCodecs(t *testing.T) {
	hexEq := func(name string, got []byte, want string) {
		t.Helper()
		if h := hex.EncodeToString(got); h != want {
			t.Errorf("%s = %s\nwant %s", name, h, want)
		}
	}

	// Posting block, with and without vectors.
	p := katPosting()
	enc := encodePosting("summary", []byte("crash"), p)
	hexEq("posting with vectors", enc,
		"010773756d6d617279056372617368010303010701020ca8020101010d636f6d6d656e74732e626f64790100040c050002010200050100011050050102010002000500")
	dp, err := decodePosting(enc, "summary", []byte("crash"))
	if err != nil || !reflect.DeepEqual(dp, p) {
		t.Errorf("decodePosting = %+v, %v; want %+v", dp, err, p)
	}
	if _, err := decodePosting(enc, "summary", []byte("crasH")); err == nil {
		t.Error("a posting block decodes for another term")
	}
	if _, err := decodePosting(enc, "description", []byte("crash")); err == nil {
		t.Error("a posting block decodes for another field")
	}
	plain := &postingList{docs: []uint64{0, 1, 1 << 40}, freqs: []uint32{1, 1, 3}, lens: []uint32{1, 2, 3}}
	enc = encodePosting("project", []byte("HDFS"), plain)
	hexEq("posting without vectors", enc,
		"010770726f6a65637404484446530003000101010102ffffffffff1f0303")
	if dp, err := decodePosting(enc, "project", []byte("HDFS")); err != nil || !reflect.DeepEqual(dp, plain) {
		t.Errorf("decodePosting = %+v, %v; want %+v", dp, err, plain)
	}

	// Stored document.
	sd := storedDoc{num: 5, id: "HDFS-1", body: []byte(`{"a":1}`)}
	enc = encodeDoc(sd)
	hexEq("stored document", enc,
		"020506484446532d31077b2261223a317d")
	if got, err := decodeDoc(enc, 5); err != nil || !reflect.DeepEqual(got, sd) {
		t.Errorf("decodeDoc = %+v, %v", got, err)
	}
	if _, err := decodeDoc(enc, 6); err == nil {
		t.Error("a stored document decodes as another document number")
	}

	// Forward index.
	fwd := []forwardField{
		{name: "project", docValues: true, count: 1, terms: [][]byte{[]byte("HDFS")}},
		{name: "summary", count: 2},
	}
	enc = encodeForward(5, fwd)
	hexEq("forward index", enc,
		"0305020770726f6a65637401010104484446530773756d6d6172790200")
	if got, err := decodeForward(enc, 5); err != nil || !reflect.DeepEqual(got, fwd) {
		t.Errorf("decodeForward = %+v, %v", got, err)
	}
	if _, err := decodeForward(enc, 4); err == nil {
		t.Error("a forward index decodes as another document number")
	}

	// Head.
	h := head{gen: 2, logStart: 64, logEnd: 70, seals: 123456, building: 0, meta: stateMeta{
		nextDoc: 12, liveCount: 10, nextRun: 4,
		fields: []fieldCount{{name: "_all", terms: 300}, {name: "summary", terms: 7}},
		runs:   []runDesc{{id: 3, gen: 2, leaves: 1, root: 0, entries: 20, bytes: 900, docLo: 5, docHi: 9, idsInFilter: true}, {id: 1, gen: 1, leaves: 300, inners: 2, root: innerBase + 1, entries: 90000, bytes: 4 << 20, docLo: 1, docHi: 0}},
	}}
	enc = encodeHead(h)
	const headBeforeDocRanges = "05000000024046c0c407000c0a0402045f616c6cac020773756d6d617279070203000000020100001484070000000100000001ac0202818080800890bf0580808002000000"
	hexEq("head", enc, headBeforeDocRanges+"02050901010000")
	if got, err := decodeHead(enc); err != nil || !reflect.DeepEqual(got, h) {
		t.Errorf("decodeHead = %+v, %v", got, err)
	}
	// A head written before the document ranges gives every run all of
	// them, so that no lookup skips a run.
	old, _ := hex.DecodeString(headBeforeDocRanges)
	if got, err := decodeHead(old); err != nil || got.meta.runs[0].docLo != 0 || got.meta.runs[1].docHi != math.MaxUint64 || !got.meta.runs[0].mayHoldDoc(1<<40) {
		t.Errorf("decodeHead of a head without document ranges = %+v, %v", got.meta.runs, err)
	}
	// The first trailer: document ranges without flags.
	first, _ := hex.DecodeString(headBeforeDocRanges + "0105090100")
	if got, err := decodeHead(first); err != nil || got.meta.runs[0].docHi != 9 || got.meta.runs[0].idsInFilter {
		t.Errorf("decodeHead of a head with document ranges only = %+v, %v", got.meta.runs, err)
	}
	if _, err := decodeHead(append(bytes.Clone(enc[:len(enc)-7]), 3, 5, 9, 1, 1, 0, 0)); err == nil {
		t.Error("a head with an unknown trailer decodes")
	}
	if _, err := decodeHead(append(bytes.Clone(enc[:len(enc)-7]), 2, 5, 9, 4, 1, 0, 0)); err == nil {
		t.Error("a head with an unknown run flag decodes")
	}

	// State page: a leaf of three entries and an inner page.
	leaf := encodePage(3, 0, 0, []string{"i" + "A-1", "i" + "A-2", "n" + "\x00"}, [][]byte{{1, 0}, {1, 1}, tombVal}, nil)
	hexEq("leaf page", leaf, "0903000003000469412d3102010003013202010100026e000100")
	lp, err := decodePage(leaf, 3, 0)
	if err != nil || !reflect.DeepEqual(lp.allKeys(), []string{"iA-1", "iA-2", "n\x00"}) || !bytes.Equal(lp.val(1), []byte{1, 1}) {
		t.Errorf("decodePage = %+v, %v", lp, err)
	}
	if _, err := decodePage(leaf, 3, 1); err == nil {
		t.Error("a page decodes as another page number")
	}
	if _, err := decodePage(leaf, 4, 0); err == nil {
		t.Error("a page decodes as another run")
	}
	inner := encodePage(3, innerBase, 1, []string{"iA-1", "t\x07summary"}, nil, []uint32{0, 1})
	hexEq("inner page", inner, "090380808080080102000469412d31000009740773756d6d61727901")
	if ip, err := decodePage(inner, 3, innerBase); err != nil || !reflect.DeepEqual(ip.kids, []uint32{0, 1}) {
		t.Errorf("decodePage(inner) = %+v, %v", ip, err)
	}

	// Log entry.
	l := &logEntry{
		seq:     7,
		added:   []docAdd{{num: 10, id: "A-1", gen: 1}, {num: 11, id: "A-2", gen: 1}},
		deleted: []uint64{2},
		terms: []termPostings{
			{field: "project", term: "HDFS", pl: plain},
			{field: "summary", term: "crash", pl: katPosting()},
		},
		nextDoc: 12,
	}
	enc = encodeLog(l)
	hexEq("log entry", enc,
		"04070c020a03412d31000000010b03412d32000000010102021e010770726f6a65637404484446530003000101010102ffffffffff1f030343010773756d6d617279056372617368010303010701020ca8020101010d636f6d6d656e74732e626f64790100040c050002010200050100011050050102010002000500")
	if got, err := decodeLog(enc, 7); err != nil || !reflect.DeepEqual(got, l) {
		t.Errorf("decodeLog = %+v, %v", got, err)
	}
	if _, err := decodeLog(enc, 8); err == nil {
		t.Error("a log entry decodes as another sequence number")
	}

	// Chunk.
	enc = encodeChunk(kindSnapshot, 65, 0, []byte("data"))
	hexEq("chunk", enc,
		"0641000464617461")
	if got, err := decodeChunk(enc, kindSnapshot, 65, 0); err != nil || string(got) != "data" {
		t.Errorf("decodeChunk = %q, %v", got, err)
	}
	for _, c := range []struct {
		kind byte
		id   uint64
		n    uint32
	}{{kindInternal, 65, 0}, {kindSnapshot, 66, 0}, {kindSnapshot, 65, 1}} {
		if _, err := decodeChunk(enc, c.kind, c.id, c.n); err == nil {
			t.Errorf("a chunk decodes as %+v", c)
		}
	}
}
