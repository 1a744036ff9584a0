package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

// BenchmarkPeakRSS measures the peak resident set size of the process
// while the server answers the largest request each endpoint accepts under
// the default limits: a bulk of 32 MiB (31 documents of 1 MiB), a 1 MiB
// PUT, a search returning every stored field of 31 documents of 1 MiB
// (size 31, fields "*"), and a GET of a 1 MiB document. It reports, per
// request, peak-MiB (the process's high-water mark during the request,
// reset before it through /proc/self/clear_refs) and over-base-MiB (the
// peak above the resident size just before the request). Linux only;
// nothing here is a pass/fail threshold.
//
//	go test ./server -run '^$' -bench PeakRSS -benchtime 3x
func BenchmarkPeakRSS(b *testing.B) {
	if _, err := os.Stat("/proc/self/clear_refs"); err != nil {
		b.Skip("needs Linux /proc/self/clear_refs to reset the peak RSS")
	}
	// A long time limit: the point is memory, and analysing 32 MiB takes
	// minutes on a small shared machine.
	ts := startServer(b, Config{Instance: testInstanceOptions, Limits: Limits{RequestTimeout: 10 * time.Minute}})
	ts.client.Timeout = 10 * time.Minute
	w, r := ts.createInstance("mem", nil)
	rng := rand.New(rand.NewPCG(1, 2))
	const nDocs = 31
	ids := make([]string, nDocs)
	docs := make([][]byte, nDocs)
	for i := range docs {
		ids[i] = fmt.Sprintf("big-%02d", i)
		docs[i] = bigDocument(rng, 1<<20-64)
	}
	bulk := bulkBody(ids, docs)
	want(b, ts.do("PUT", "/v1/instances/mem/documents/att", w, `{"summary":"holds the attachment"}`), http.StatusOK, "")
	if len(bulk) > 32<<20 {
		b.Fatalf("bulk body %d bytes, over the default limit", len(bulk))
	}
	send := func(b *testing.B, method, path, token, ct string, body []byte) {
		b.Helper()
		req, err := http.NewRequest(method, ts.url+path, bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := ts.client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		// The answer is discarded as it arrives, so that the client does
		// not hold it in this process's memory.
		n, _ := io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("%s %s: HTTP %d (%d bytes)", method, path, resp.StatusCode, n)
		}
		b.ReportMetric(float64(n)/(1<<20), "answer-MiB")
	}
	measure := func(b *testing.B, f func(b *testing.B)) {
		var peak, over float64
		for b.Loop() {
			runtime.GC()
			debug.FreeOSMemory()
			base := rssMiB()
			if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
				b.Skipf("cannot reset the peak RSS: %v", err)
			}
			f(b)
			p := hwmMiB()
			peak = max(peak, p)
			over = max(over, p-base)
		}
		b.ReportMetric(peak, "peak-MiB")
		b.ReportMetric(over, "over-base-MiB")
	}
	b.Run("bulk-32MiB", func(b *testing.B) {
		measure(b, func(b *testing.B) { send(b, "POST", "/v1/instances/mem/bulk", w, "application/x-ndjson", bulk) })
	})
	b.Run("put-1MiB", func(b *testing.B) {
		measure(b, func(b *testing.B) { send(b, "PUT", "/v1/instances/mem/documents/put", w, "application/json", docs[0]) })
	})
	search, _ := json.Marshal(map[string]any{"query": map[string]any{"match_all": map[string]any{}}, "size": nDocs, "fields": []string{"*"}})
	b.Run("search-31x1MiB-fields-all", func(b *testing.B) {
		measure(b, func(b *testing.B) { send(b, "POST", "/v1/instances/mem/search", r, "application/json", search) })
	})
	b.Run("get-1MiB", func(b *testing.B) {
		measure(b, func(b *testing.B) { send(b, "GET", "/v1/instances/mem/documents/big-00", r, "", nil) })
	})
	// The largest attachment (Limits.MaxAttachmentBytes, 100 MiB) of text,
	// so that its first MiB is indexed, sent from a generator: the client
	// holds none of it.
	const attachBytes = DefaultMaxAttachmentBytes
	var aid string
	b.Run("upload-100MiB", func(b *testing.B) {
		measure(b, func(b *testing.B) {
			req, err := http.NewRequest("POST", ts.url+"/v1/instances/mem/documents/att/attachments?name=big.log",
				io.LimitReader(repeatReader("connection refused at datanode seven; retrying the write pipeline\n"), attachBytes))
			if err != nil {
				b.Fatal(err)
			}
			req.ContentLength = attachBytes
			req.Header.Set("Authorization", "Bearer "+w)
			req.Header.Set("Content-Type", "text/x-log")
			resp, err := ts.client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			defer resp.Body.Close()
			var info struct {
				ID string `json:"id"`
			}
			if resp.StatusCode != http.StatusCreated || json.NewDecoder(resp.Body).Decode(&info) != nil {
				b.Fatalf("upload: HTTP %d", resp.StatusCode)
			}
			aid = info.ID
		})
	})
	b.Run("download-100MiB", func(b *testing.B) {
		if aid == "" {
			b.Skip("no attachment uploaded")
		}
		measure(b, func(b *testing.B) {
			send(b, "GET", "/v1/instances/mem/documents/att/attachments/"+aid, r, "", nil)
		})
	})
}

// repeatReader reads s over and over.
type repeatReader string

func (r repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		n += copy(p[n:], r)
	}
	return n, nil
}

// bigDocument returns a JSON document of about n bytes whose summary is
// words drawn from a vocabulary of 5,000, Zipf-distributed like text.
func bigDocument(rng *rand.Rand, n int) []byte {
	vocab := make([]string, 5000)
	vr := rand.New(rand.NewPCG(7, 7))
	const letters = "abcdefghijklmnopqrstuvwxyz"
	for i := range vocab {
		w := make([]byte, 3+vr.IntN(8))
		for j := range w {
			w[j] = letters[vr.IntN(len(letters))]
		}
		vocab[i] = string(w)
	}
	zipf := rand.NewZipf(rng, 1.1, 1, uint64(len(vocab)-1))
	var sb strings.Builder
	sb.Grow(n)
	for sb.Len() < n-48 {
		sb.WriteString(vocab[zipf.Uint64()])
		sb.WriteByte(' ')
	}
	d, _ := json.Marshal(map[string]any{"key": "BIG-1", "project": "HDFS", "summary": sb.String(), "votes": 1})
	return d
}

// hwmMiB returns this process's peak resident set size (VmHWM) in MiB
// (Linux), or -1.
func hwmMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(l, "VmHWM:")), "%f", &kb)
			return kb / 1024
		}
	}
	return -1
}
