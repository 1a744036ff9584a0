package main

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/blindex/blindex/index"
)

// The demo's sample: 30 issues of a fictional online shop's tracker, written
// for blindex (not taken from any real tracker), and a mapping for them.
var (
	//go:embed demodata/issues.ndjson
	demoIssues []byte
	//go:embed demodata/mapping.json
	demoMapping []byte
)

// demoSearches are the searches the demo runs, one per query form.
var demoSearches = []struct{ what, query string }{
	{"a term, in every text field (_all)", "timeout"},
	{"a phrase", `"checkout page"`},
	{"must and must-not on keyword fields", "+priority:Critical -status:Resolved"},
	{"a misspelling, with fuzzy matching", "refnd~1"},
}

const demoFields = "summary,status,priority"

const demoHelp = `
Indexes a bundled sample of 30 issue-tracker documents into an encrypted
instance and runs a few example searches. Without --data, it uses a new
temporary directory (kept, so you can go on with the commands it prints).
The key provider home is --home, $BLINDEX_HOME or ~/.blindex, as for every
command.
`

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("demo", "[--data DIR]", demoHelp, stderr)
	var c commonFlags
	c.register(fs, true)
	pos, done, code := parseCommand(fs, args)
	if done {
		return code
	}
	err := func() error {
		if len(pos) != 0 {
			return usageErrorf("demo takes no arguments")
		}
		sampleDir := ""
		if c.data == "" && c.store == "" {
			root, err := os.MkdirTemp("", "blindex-demo-")
			if err != nil {
				return fmt.Errorf("cannot create a temporary directory: %w", err)
			}
			c.data = filepath.Join(root, "data")
			sampleDir = root
			for name, b := range map[string][]byte{"mapping.json": demoMapping, "issues.ndjson": demoIssues} {
				if err := os.WriteFile(filepath.Join(root, name), b, 0o600); err != nil {
					return err
				}
			}
		}
		e, err := openEnv(c, true)
		if err != nil {
			return err
		}
		defer e.Close()
		in, created, err := e.openOrCreate(ctx, c, "the demo mapping", demoMapping, index.Options{})
		if err != nil {
			return err
		}
		defer in.Close()
		self := selfCommand()
		verb := "created"
		if !created {
			verb = "re-used"
		}
		fmt.Fprintf(stdout, "blindex demo: %s instance %q in %s (key provider home %s)\n", verb, c.instance, c.storeName(), e.home)

		x := &indexer{in: in, idField: "key", batch: 1000}
		start := time.Now()
		if err := x.readNDJSON(ctx, bytes.NewReader(demoIssues), "the bundled sample"); err != nil {
			return err
		}
		if err := x.flush(ctx); err != nil {
			return err
		}
		total, err := in.DocCount()
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, summaryLine(x.indexed, time.Since(start), c.instance, total))
		fmt.Fprintln(stdout, "Every document, term and posting is now sealed (AES-256-GCM) at a pseudorandom label.")

		opts := searchOptions{size: 5, fields: splitList(demoFields)}
		dataArg := c.storeArg()
		instArg := ""
		if c.instance != "default" {
			instArg = " --instance " + shellQuote(c.instance)
		}
		for _, s := range demoSearches {
			fmt.Fprintf(stdout, "\n# %s\n$ %s search %s%s --fields %s %s\n", s.what, self, dataArg, instArg, demoFields, shellQuote(s.query))
			q, err := parseQuery(s.query)
			if err != nil {
				return err
			}
			res, err := in.Search(ctx, opts.request(q))
			if err != nil {
				return err
			}
			printResults(stdout, res, opts)
		}

		fmt.Fprintf(stdout, "\nGo on from here (the demo data stays in %s):\n", c.storeName())
		fmt.Fprintf(stdout, "  %s search %s%s '+votes:>=10 +status:Open'\n", self, dataArg, instArg)
		fmt.Fprintf(stdout, "  %s search %s%s --json 'created:>=\"2025-03-01\" checkout'\n", self, dataArg, instArg)
		fmt.Fprintf(stdout, "  %s get %s%s SHOP-106\n", self, dataArg, instArg)
		fmt.Fprintf(stdout, "  %s check %s%s\n", self, dataArg, instArg)
		if sampleDir != "" {
			fmt.Fprintf(stdout, "  %s index %s --instance mine --mapping %s --id-field key %s\n", self, dataArg,
				shellQuote(filepath.Join(sampleDir, "mapping.json")), shellQuote(filepath.Join(sampleDir, "issues.ndjson")))
			fmt.Fprintf(stdout, "Remove %s when you are done.\n", sampleDir)
		}
		return nil
	}()
	return report(stderr, "demo", err)
}

// selfCommand is how the user ran blindex, for the commands the demo
// prints: "go run ./cmd/blindex" under go run, otherwise "blindex".
func selfCommand() string {
	exe := filepath.ToSlash(os.Args[0])
	if strings.Contains(exe, "/go-build") && strings.TrimSuffix(filepath.Base(exe), ".exe") == "blindex" {
		return "go run ./cmd/blindex"
	}
	return "blindex"
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '/' || r == '.' || r == '-' || r == '_' || r == ':' || r == ',' ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9'))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
