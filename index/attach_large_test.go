package index

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/blindex/blindex/attach"
	"github.com/blindex/blindex/store"
)

// attachGenReader produces n bytes of a deterministic sequence without holding
// them: each 8-byte word is a counter mixed by a multiplication.
type attachGenReader struct {
	n, off int64
}

func (g *attachGenReader) Read(p []byte) (int, error) {
	if g.off >= g.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), g.n-g.off)]
	var w [8]byte
	for i := range p {
		pos := g.off + int64(i)
		if i == 0 || pos%8 == 0 {
			binary.LittleEndian.PutUint64(w[:], uint64(pos/8)*0x9e3779b97f4a7c15)
		}
		p[i] = w[pos%8]
	}
	g.off += int64(len(p))
	return len(p), nil
}

// attachVmHWM returns the process's peak resident set size in bytes.
func attachVmHWM(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status:", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Skip("no VmHWM")
	return 0
}

// attachResetHWM resets the peak RSS to the current RSS (Linux ≥ 4.0); it
// reports whether it could.
func attachResetHWM() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// TestAttachLargeMemoryBounded streams a 1 GiB attachment in from a
// generator and back out, and checks that the peak RSS grows by much less
// than the attachment (the bound is 64 MiB; chunks are written in batches
// of attachBatchChunks, so the upload itself holds about 2 MiB). Pebble's
// own memory is bounded separately by its options (two 32 MiB memtables
// and a 64 MiB cache by default): the store here uses small ones, so that
// what is measured is the attachment path's. Skipped with -short.
func TestAttachLargeMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("1 GiB attachment; skipped with -short")
	}
	const size = 1 << 30
	const bound = 64 << 20
	e := newEnv(t)
	e.st.Close()
	st, err := store.OpenPebble(e.dir, store.PebbleOptions{MemTableSize: 4 << 20, CacheSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	e.st = st
	ctx := context.Background()
	in := newAttachInstance(t, e, "big", attachTestMapping)
	// Warm up: Pebble's memtables and caches, the runtime's heap.
	if _, err := in.AddAttachment(ctx, "DOC-1", attach.Meta{Name: "warm.bin"}, &attachGenReader{n: 96 << 20}); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	debug.FreeOSMemory()
	reset := attachResetHWM()
	base := attachVmHWM(t)

	src := &attachGenReader{n: size}
	h := sha256.New()
	start := time.Now()
	info, err := in.AddAttachment(ctx, "DOC-1", attach.Meta{Name: "big.bin"}, io.TeeReader(src, h))
	if err != nil {
		t.Fatal(err)
	}
	upload := time.Since(start)
	peakUp := attachVmHWM(t)
	if info.Size != size || info.Chunks != (size+attach.ChunkSize-1)/attach.ChunkSize {
		t.Fatalf("info %+v", info)
	}
	want := h.Sum(nil)

	runtime.GC()
	debug.FreeOSMemory()
	if reset {
		attachResetHWM()
	}
	baseRead := attachVmHWM(t)
	r, _, err := in.OpenAttachment(ctx, "DOC-1", info.ID)
	if err != nil {
		t.Fatal(err)
	}
	h.Reset()
	start = time.Now()
	n, err := io.Copy(h, r)
	r.Close()
	if err != nil || n != size {
		t.Fatalf("read back %d bytes: %v", n, err)
	}
	read := time.Since(start)
	peakRead := attachVmHWM(t)
	if !bytes.Equal(h.Sum(nil), want) {
		t.Fatal("read back other bytes")
	}
	t.Logf("1 GiB: upload %v (%.0f MiB/s), peak RSS %d MiB → %d MiB (+%d MiB); read %v (%.0f MiB/s), peak RSS %d → %d MiB (+%d MiB); HWM reset: %v",
		upload.Round(time.Millisecond), float64(size>>20)/upload.Seconds(), base>>20, peakUp>>20, (peakUp-base)>>20,
		read.Round(time.Millisecond), float64(size>>20)/read.Seconds(), baseRead>>20, peakRead>>20, (peakRead-baseRead)>>20, reset)
	if peakUp-base > bound {
		t.Errorf("upload: peak RSS grew by %d MiB, bound %d MiB", (peakUp-base)>>20, bound>>20)
	}
	if peakRead-baseRead > bound {
		t.Errorf("read: peak RSS grew by %d MiB, bound %d MiB", (peakRead-baseRead)>>20, bound>>20)
	}
	if err := in.DeleteAttachment(ctx, "DOC-1", info.ID); err != nil {
		t.Fatal(err)
	}
}
