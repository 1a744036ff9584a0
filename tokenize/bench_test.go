package tokenize

import (
	"testing"
)

// BenchmarkAnalyzeCorpus measures Analyze (decode, validate, MapDocument,
// analysis) over the first 1,000 corpus documents; one op is one document.
func BenchmarkAnalyzeCorpus(b *testing.B) {
	docs := loadCorpus(b, 1000)
	m, err := ParseMapping(readCorpusMapping(b))
	if err != nil {
		b.Fatal(err)
	}
	var bytes int64
	for _, d := range docs {
		bytes += int64(len(d.body))
	}
	b.SetBytes(bytes / int64(len(docs)))
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		d := docs[i%len(docs)]
		if _, err := m.Analyze(d.id, d.body); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "docs/s")
}

// BenchmarkBleveReferenceCorpus is the same work done the way a plaintext
// bleve index does it (decode, MapDocument, AddIDField, scorch analyze),
// without blindex's validation: the baseline for BenchmarkAnalyzeCorpus.
func BenchmarkBleveReferenceCorpus(b *testing.B) {
	docs := loadCorpus(b, 1000)
	im := bleveMapping(b, readCorpusMapping(b))
	var bytes int64
	for _, d := range docs {
		bytes += int64(len(d.body))
	}
	b.SetBytes(bytes / int64(len(docs)))
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		d := docs[i%len(docs)]
		referenceAnalyze(b, im, d.id, d.body)
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "docs/s")
}
