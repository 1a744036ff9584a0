package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
)

// ReadReport reads a report.json that Run wrote.
func ReadReport(path string) (*Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("bench: %s: %w", path, err)
	}
	return &r, nil
}

// Merge combines the reports of one run made in parts (Config.Skip, each
// part in its own process): the stages, queries and load of the first
// report that has stages, the durable comparison, peak memory and server
// scenario of the first that has each. The parts must have the same sizes
// and seed. It evaluates the targets and notes again, and writes
// report.json and the charts under outDir.
func Merge(parts []*Report, outDir string) (*Report, error) {
	if len(parts) == 0 {
		return nil, fmt.Errorf("bench: merge: no report")
	}
	first := parts[0]
	out := &Report{Started: first.Started, Machine: first.Machine, Config: first.Config, CorpusDocs: first.CorpusDocs}
	out.Config.Skip = nil
	for i, p := range parts {
		if !slices.Equal(p.Config.Sizes, first.Config.Sizes) || p.Config.Seed != first.Config.Seed {
			return nil, fmt.Errorf("bench: merge: report %d has sizes %v and seed %d, report 1 %v and %d", i+1, p.Config.Sizes, p.Config.Seed, first.Config.Sizes, first.Config.Seed)
		}
		if p.Started.Before(out.Started) {
			out.Started = p.Started
		}
		out.Seconds = max(out.Seconds, p.Seconds)
		out.CorpusDocs = max(out.CorpusDocs, p.CorpusDocs)
		if len(out.Stages) == 0 && len(p.Stages) > 0 {
			out.Stages, out.Queries, out.Load, out.Config = p.Stages, p.Queries, p.Load, p.Config
			out.Config.Skip = nil
		}
		if out.Durable == nil {
			out.Durable = p.Durable
		}
		if len(out.Memory.Checkpoints) == 0 && len(p.Memory.Checkpoints) > 0 {
			out.Memory = p.Memory
		}
		for k, c := range p.Memory.Children {
			if out.Memory.Children[k] == nil && c != nil {
				out.Memory.Children[k] = c
				out.Memory.Method = p.Memory.Method
			}
		}
		if out.Server == nil {
			out.Server = p.Server
		}
		if i > 0 {
			out.Machine.LoadAvg = append(out.Machine.LoadAvg, p.Machine.LoadAvg...)
		}
	}
	if len(out.Memory.Checkpoints) == 0 {
		if err := out.Memory.derive(); err != nil {
			return nil, err
		}
	}
	out.Notes = append(out.Notes, fmt.Sprintf("merged from %d reports of parts of one run, made side by side in separate processes (Config.Skip): each part shared the machine with the others", len(parts)))
	out.evaluateTargets()
	out.notes()
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	charts, err := writeCharts(out, outDir)
	if err != nil {
		return nil, err
	}
	out.Outputs = Outputs{JSON: outPath(outDir, "report.json"), Charts: charts}
	if err := out.writeJSON(out.Outputs.JSON); err != nil {
		return nil, err
	}
	return out, nil
}
