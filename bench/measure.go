package bench

import (
	"bufio"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
)

// latencies collects durations.
type latencies []time.Duration

// Stats summarizes a set of latencies, in milliseconds.
type Stats struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean_ms"`
	P50  float64 `json:"p50_ms"`
	P95  float64 `json:"p95_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
}

func (l latencies) stats() Stats {
	if len(l) == 0 {
		return Stats{}
	}
	s := slices.Clone(l)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return Stats{
		N:    len(s),
		Mean: ms(sum) / float64(len(s)),
		P50:  ms(quantile(s, 0.50)),
		P95:  ms(quantile(s, 0.95)),
		P99:  ms(quantile(s, 0.99)),
		Max:  ms(s[len(s)-1]),
	}
}

// quantile is the nearest-rank quantile of sorted durations.
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// dirSize returns the total size and number of regular files under dir.
func dirSize(dir string) (bytes int64, files int, err error) {
	err = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			bytes += info.Size()
			files++
		}
		return nil
	})
	return bytes, files, err
}

// procStatus returns a field of /proc/self/status in bytes (VmRSS, VmHWM),
// or 0 when it cannot be read (not Linux).
func procStatus(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != field {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			return 0
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0
		}
		if len(fields) > 1 && fields[1] == "kB" {
			n *= 1024
		}
		return n
	}
	return 0
}

// resetPeakRSS resets this process's VmHWM to its current RSS (Linux 4.0
// and later); it reports whether that worked.
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// loadAvg returns the first three fields of /proc/loadavg, or "".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// cpuModel returns the CPU model name, or "".
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// ratio returns a/b, or 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// Pair is one figure for both engines and its ratio blindex/bleve.
type Pair struct {
	Blindex float64 `json:"blindex"`
	Bleve   float64 `json:"bleve"`
	Ratio   float64 `json:"ratio"`
}

func pair(blindex, bleve float64) Pair {
	return Pair{Blindex: blindex, Bleve: bleve, Ratio: ratio(blindex, bleve)}
}

// machine describes the machine and the build the run measures.
func machine() Machine {
	m := Machine{
		GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, CPUModel: cpuModel(), NumCPU: runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(), LoadAvg: []string{loadAvg()},
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == bleveModule {
				m.BleveVersion = d.Version
			}
		}
	}
	if m.BleveVersion == "" {
		m.BleveVersion = versionFromGoMod(bleveModule)
	}
	return m
}

const bleveModule = "github.com/blevesearch/bleve/v2"

// versionFromGoMod finds the version of module mod required by the go.mod
// of the working directory or a parent (test binaries carry no dependency
// list in their build info), or returns "".
func versionFromGoMod(mod string) string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil {
			for _, l := range strings.Split(string(data), "\n") {
				f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(l), "require "))
				if len(f) >= 2 && f[0] == mod {
					return f[1]
				}
			}
			return ""
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// settledSize returns the size measure gives once two readings poll apart
// agree, or its last reading after timeout. A store deletes the files a
// merge or compaction made obsolete in the background (Pebble's cleanup,
// scorch's persister), after the call that settled it returned: read at
// once, the size of a settled index counts them.
func settledSize(measure func() (int64, error), poll, timeout time.Duration) (int64, error) {
	deadline := time.Now().Add(timeout)
	last, err := measure()
	for err == nil && time.Now().Before(deadline) {
		time.Sleep(poll)
		var cur int64
		if cur, err = measure(); err == nil && cur == last {
			return cur, nil
		}
		last = cur
	}
	return last, err
}
