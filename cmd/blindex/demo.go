package main

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/blindex/blindex/index"
	"github.com/blindex/blindex/query"
	"github.com/blindex/blindex/tokenize"
)

// The demo's sample: 30 issues of a fictional online shop's tracker, written
// for blindex (not taken from any real tracker), and a mapping for them.
var (
	//go:embed demodata/issues.ndjson
	demoIssues []byte
	//go:embed demodata/mapping.json
	demoMapping []byte
	// The wiki's sample: 12 pages, blog posts and questions of the same
	// fictional shop, and the bundled wiki mapping (page and blog content,
	// comments, questions with their answers).
	//go:embed demodata/wiki.ndjson
	demoWiki []byte
	//go:embed demodata/wiki-mapping.json
	demoWikiMapping []byte
)

// demoWikiSearches are the searches the demo runs on the wiki.
var demoWikiSearches = []struct{ what, query string }{
	{"the wiki: a phrase in pages and blog posts", `"release checklist"`},
	{"the wiki: questions whose answers mention a term", "+type:question +answers.body:rotate"},
}

const demoWikiFields = "title,type,space"

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
instance, and 12 wiki pages, blog posts and questions into a second one
(instance "wiki", or NAME-wiki with --instance NAME; product wiki, with the
bundled wiki mapping), and runs a few example searches on each. Without --data, it uses a new
temporary directory (kept, so you can go on with the commands it prints).
The key provider home is --home, $BLINDEX_HOME or ~/.blindex, as for every
command.
`

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := newStoreCmd(cmdSpec{name: "demo", synopsis: "[--data DIR]", help: demoHelp, instance: true, open: openCreate}, stderr)
	c := &cmd.flags
	sampleDir := ""
	// Without --data or --store, the demo works in a new temporary
	// directory holding the bundled samples.
	check := func(pos []string) error {
		if err := cmd.noArgs(pos); err != nil {
			return err
		}
		if c.data == "" && c.store == "" {
			root, err := os.MkdirTemp("", "blindex-demo-")
			if err != nil {
				return fmt.Errorf("cannot create a temporary directory: %w", err)
			}
			c.data = filepath.Join(root, "data")
			sampleDir = root
			for name, b := range map[string][]byte{"mapping.json": demoMapping, "issues.ndjson": demoIssues,
				"wiki-mapping.json": demoWikiMapping, "wiki.ndjson": demoWiki} {
				if err := os.WriteFile(filepath.Join(root, name), b, 0o600); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return cmd.run(args, check, func(e *env, _ []string) error {
		in, created, err := e.openOrCreate(ctx, "the demo mapping", false, demoMapping, index.Meta{Site: "demo.example", Product: "software"}, index.Options{})
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
			res, err := query.Search(ctx, in, opts.request(q))
			if err != nil {
				return err
			}
			printResults(stdout, res, opts)
		}

		wikiName := "wiki"
		if c.instance != "default" {
			wikiName = c.instance + "-wiki"
		}
		if err := e.demoWikiInstance(ctx, stdout, wikiName, self, dataArg); err != nil {
			return err
		}

		fmt.Fprintf(stdout, "\nGo on from here (the demo data stays in %s):\n", c.storeName())
		fmt.Fprintf(stdout, "  %s search %s%s '+votes:>=10 +status:Open'\n", self, dataArg, instArg)
		fmt.Fprintf(stdout, "  %s search %s%s --json 'created:>=\"2025-03-01\" checkout'\n", self, dataArg, instArg)
		fmt.Fprintf(stdout, "  %s get %s%s SHOP-106\n", self, dataArg, instArg)
		fmt.Fprintf(stdout, "  %s check %s%s\n", self, dataArg, instArg)
		fmt.Fprintf(stdout, "  %s instance ls %s\n", self, dataArg)
		if sampleDir != "" {
			fmt.Fprintf(stdout, "  %s index %s --instance mine --mapping %s --id-field key %s\n", self, dataArg,
				shellQuote(filepath.Join(sampleDir, "mapping.json")), shellQuote(filepath.Join(sampleDir, "issues.ndjson")))
			fmt.Fprintf(stdout, "Remove %s when you are done.\n", sampleDir)
		}
		return nil
	})
}

// demoWikiInstance indexes the wiki sample into instance name (product
// wiki on site demo.example, next to the issue tracker's product software;
// neither is BYOK), creating it with the bundled wiki
// mapping when it does not exist, and runs the wiki searches.
func (e *env) demoWikiInstance(ctx context.Context, stdout io.Writer, name, self, dataArg string) error {
	cat, err := e.catalog(index.Options{})
	if err != nil {
		return err
	}
	in, err := cat.Instance(ctx, name)
	if errors.Is(err, index.ErrNotFound) {
		m, perr := tokenize.ParseMapping(demoWikiMapping)
		if perr != nil {
			return fmt.Errorf("the bundled wiki mapping: %w", perr)
		}
		in, err = cat.CreateInstance(ctx, name, index.Meta{Site: "demo.example", Product: "wiki"}, m)
	}
	if err != nil {
		return err
	}
	x := &indexer{in: in, idField: "id", batch: 1000}
	start := time.Now()
	if err := x.readNDJSON(ctx, bytes.NewReader(demoWiki), "the bundled wiki sample"); err != nil {
		return err
	}
	if err := x.flush(ctx); err != nil {
		return err
	}
	total, err := in.DocCount()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n%s\n", summaryLine(x.indexed, time.Since(start), name, total))
	fmt.Fprintln(stdout, "The wiki puts page and blog content, comments, questions and answers (and attachments) under its instance key.")
	opts := searchOptions{size: 5, fields: splitList(demoWikiFields)}
	for _, s := range demoWikiSearches {
		fmt.Fprintf(stdout, "\n# %s\n$ %s search %s --instance %s --fields %s %s\n", s.what, self, dataArg, shellQuote(name), demoWikiFields, shellQuote(s.query))
		q, err := parseQuery(s.query)
		if err != nil {
			return err
		}
		res, err := query.Search(ctx, in, opts.request(q))
		if err != nil {
			return err
		}
		printResults(stdout, res, opts)
	}
	return nil
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
