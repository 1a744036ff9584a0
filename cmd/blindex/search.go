package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/blevesearch/bleve/v2"

	"github.com/blindex/blindex/index"
	"github.com/blindex/blindex/internal/input"
	"github.com/blindex/blindex/query"
	"github.com/blindex/blindex/view"
)

const searchSynopsis = "--data DIR [--instance NAME | --alias NAME,NAME...] [--size N] [--from N] [--json] [--fields a,b] [--dialect boolean] QUERY\n       blindex search --data DIR [--instance NAME] [--size N] --queries FILE"

const searchHelp = `
Searches an instance. QUERY is bleve's query-string syntax (terms,
field:term, "phrases", +must, -must_not, boosts^2, wildcard*, /regexp/,
fuzzy~1, numeric and date ranges such as votes:>=3 or created:>"2024-01-01")
or, when it starts with '{', bleve's JSON query DSL. Several arguments are
joined with spaces. A query that begins with '-' goes after '--':

    blindex search --data DIR -- '-status:Closed +priority:Critical'

With --dialect boolean, QUERY may also use AND, OR, NOT and parentheses
(NOT binds tighter than AND, AND tighter than OR; clauses side by side
keep bleve's meaning), e.g. 'project:HDFS AND (crash OR hang) NOT
status:Closed'. See the README's query syntax section.

Prints a table of rank, id, score and the --fields asked for (stored fields
only); with --json, bleve's search-result JSON.

With --alias a,b,c, searches those instances as one index, as bleve's
IndexAlias does (hits merged in sort order, then paged; the table shows each
hit's instance). They must belong to one organisation and one encryption
configuration; a locked instance fails the search.

Each query takes the server's limits: --timeout (default 30s) and
--max-expansion-entries (default 4,000,000 term dictionary entries examined
while expanding wildcard, regexp, prefix, fuzzy and range clauses). Over
either, the query stops with exit 1 and a message saying which.

With --queries FILE (- for standard input), runs one query a line (blank
lines and lines starting with # are skipped) and prints one JSON object a
line: {"query", "total_hits", "hits": [{"id", "score"}], "took_us"}, or
{"query", "error"} for an invalid query or one over a limit (--timeout
applies to each query), and goes on with the next one.
`

func runSearch(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := newStoreCmd(cmdSpec{name: "search", synopsis: searchSynopsis, help: searchHelp, instance: true, open: openReadOnly}, stderr)
	fs := cmd.fs
	size := fs.Int("size", 10, "number of hits to return")
	from := fs.Int("from", 0, "number of hits to skip (paging)")
	asJSON := fs.Bool("json", false, "print bleve's search-result JSON instead of a table (--queries always prints JSON lines)")
	fields := fs.String("fields", "", "comma-separated stored `fields` to show (* for all stored fields)")
	sortBy := fs.String("sort", "", "comma-separated sort `order` (bleve's: -_score,_id is the default; -field for descending)")
	queries := fs.String("queries", "", "run every query of `FILE` (one a line) and print one JSON line each")
	dialect := fs.String("dialect", "bleve", "query-string `syntax`: bleve, or boolean (bleve's plus AND, OR, NOT and parentheses)")
	alias := fs.String("alias", "", "search the comma-separated `instances` (one organisation) as one index instead of --instance")
	timeout := fs.Duration("timeout", 30*time.Second, "time limit of each query (as the server's request timeout); 0 for none")
	maxExpansion := fs.Int64("max-expansion-entries", index.DefaultMaxExpansionEntries, "most term dictionary entries one query may examine while expanding its wildcard, regexp, prefix, fuzzy and range clauses (as the server's)")
	var (
		inOpts index.Options
		opts   searchOptions
		q      query.Query
	)
	check := func(pos []string) error {
		if *timeout < 0 {
			return usageErrorf("--timeout must not be negative")
		}
		if *maxExpansion <= 0 {
			return usageErrorf("--max-expansion-entries must be positive")
		}
		inOpts = index.Options{MaxExpansionEntries: *maxExpansion}
		switch {
		case *queries != "" && len(pos) > 0:
			return usageErrorf("give either QUERY or --queries FILE, not both")
		case *queries == "" && len(pos) == 0:
			return usageErrorf("give a QUERY (or --queries FILE)")
		case *size < 0 || *from < 0:
			return usageErrorf("--size and --from must not be negative")
		case *from+*size > query.MaxResultWindow:
			return usageErrorf("--from plus --size must be at most %d", query.MaxResultWindow)
		case *alias != "" && *queries != "":
			return usageErrorf("--alias runs one QUERY, not --queries")
		}
		d, err := query.ParseDialect(*dialect)
		if err != nil {
			return usageErrorf("--dialect must be bleve or boolean")
		}
		if *sortBy != "" {
			items := strings.Split(*sortBy, ",")
			for i := range items {
				items[i] = strings.TrimSpace(items[i])
			}
			if err := input.SortStrings(items); err != nil {
				return usageErrorf("--sort %q: %s", *sortBy, strings.TrimPrefix(err.Error(), "input: invalid: "))
			}
		}
		opts = searchOptions{size: *size, from: *from, fields: splitList(*fields), sort: splitList(*sortBy), dialect: d, timeout: *timeout}
		if *queries == "" {
			if q, err = parseDialectQuery(strings.Join(pos, " "), opts.dialect); err != nil {
				return err
			}
		}
		return nil
	}
	return cmd.run(args, check, func(e *env, _ []string) error {
		if *alias != "" {
			return searchAlias(ctx, e, splitList(*alias), inOpts, opts, q, *asJSON, stdout)
		}
		return e.withInstance(ctx, inOpts, func(in *index.Instance) error {
			return searchInstance(ctx, in, *queries, q, opts, *asJSON, stdin, stdout)
		})
	})
}

// searchInstance runs the query q, or the queries of the file queries,
// on in.
func searchInstance(ctx context.Context, in *index.Instance, queries string, q query.Query, opts searchOptions, asJSON bool, stdin io.Reader, stdout io.Writer) error {
	if queries != "" {
		return runQueryFile(ctx, in, queries, stdin, stdout, opts)
	}
	qctx, cancel := opts.queryContext(ctx)
	defer cancel()
	res, err := query.Search(qctx, in, opts.request(q))
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(stdout, res)
	}
	printResults(stdout, res, opts)
	return nil
}

type searchOptions struct {
	timeout    time.Duration // of each query; 0 for none
	size, from int
	fields     []string
	sort       []string
	dialect    query.Dialect // of query strings
	alias      bool          // the table shows each hit's instance
}

// searchAlias opens the instances and searches them as one
// (query.SearchAlias).
func searchAlias(ctx context.Context, e *env, names []string, inOpts index.Options, opts searchOptions, q query.Query, asJSON bool, stdout io.Writer) error {
	if len(names) == 0 {
		return usageErrorf("--alias needs instance names")
	}
	ins := make([]*index.Instance, 0, len(names))
	defer func() {
		for _, in := range ins {
			in.Close()
		}
	}()
	for _, name := range names {
		in, err := e.openInstance(ctx, name, inOpts)
		if err != nil {
			return err
		}
		ins = append(ins, in)
	}
	qctx, cancel := opts.queryContext(ctx)
	defer cancel()
	srcs := make([]view.Source, len(ins))
	for i, in := range ins {
		srcs[i] = in
	}
	res, err := query.SearchAlias(qctx, srcs, opts.request(q))
	if errors.Is(err, query.ErrAlias) {
		return usageErrorf("%v", err)
	}
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(stdout, res)
	}
	opts.alias = true
	printResults(stdout, res, opts)
	return nil
}

func (o searchOptions) request(q query.Query) *bleve.SearchRequest {
	req := bleve.NewSearchRequestOptions(q, o.size, o.from, false)
	req.Fields = o.fields
	// Without --sort, query.Search sorts by score, then document id.
	if len(o.sort) > 0 {
		req.SortBy(o.sort)
	}
	return req
}

// parseDialectQuery is parseQuery for a query string in dialect d.
func parseDialectQuery(text string, d query.Dialect) (query.Query, error) {
	if t := strings.TrimSpace(text); d != query.Boolean || t == "" || strings.HasPrefix(t, "{") {
		return parseQuery(text) // bleve's syntax, a JSON query, or empty
	}
	q, err := query.ParseString(text, query.Options{Dialect: d})
	if se := (*query.SyntaxError)(nil); errors.As(err, &se) {
		return nil, invalidQuery("invalid query: %v", fmt.Errorf("column %d: %s", se.Column, se.Msg))
	}
	return q, err
}

// maxQueryJSONDepth is the deepest JSON query accepted: the server's
// default (four JSON levels for each of 32 levels of query nesting, and 8
// more).
const maxQueryJSONDepth = 4*32 + 8

// parseQuery turns a query string, or a JSON query when it starts with
// '{', into a bleve query, validating it first so that a bad query is a
// clear usage error.
func parseQuery(text string) (query.Query, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return nil, usageErrorf("the query is empty")
	}
	if strings.HasPrefix(text, "{") {
		// bleve's parser re-decodes every nested level: a query nested
		// thousands deep would take seconds and hundreds of MB.
		if err := input.CheckDepth([]byte(text), maxQueryJSONDepth); err != nil {
			return nil, invalidQuery("invalid JSON query: %v", fmt.Errorf("it nests deeper than %d levels (the limit); flatten it", maxQueryJSONDepth))
		}
		q, err := query.ParseJSON([]byte(text))
		if err != nil {
			return nil, invalidQuery("invalid JSON query: %v", err)
		}
		if v, ok := q.(interface{ Validate() error }); ok {
			if err := v.Validate(); err != nil {
				return nil, invalidQuery("invalid JSON query: %v", err)
			}
		}
		return q, nil
	}
	if _, err := bleve.NewQueryStringQuery(text).Parse(); err != nil {
		return nil, invalidQuery("invalid query: %v", err)
	}
	return bleve.NewQueryStringQuery(text), nil
}

func invalidQuery(format string, err error) error {
	msg := strings.ReplaceAll(err.Error(), "\n", "; ")
	return &cliError{code: exitUsage, err: queryParseError(fmt.Sprintf(format, msg))}
}

// queryParseError is a query bleve's parser refused. It matches
// query.ErrInvalidQuery with errors.Is, without repeating its text.
type queryParseError string

func (e queryParseError) Error() string        { return string(e) }
func (e queryParseError) Is(target error) bool { return target == query.ErrInvalidQuery }

// queryError is the message of an invalid query in --queries output.
func queryError(err error) string {
	msg := strings.ReplaceAll(err.Error(), "\n", "; ")
	return strings.TrimPrefix(msg, query.ErrInvalidQuery.Error()+": ")
}

// hitLine and queryLine are the --queries output shapes.
type hitLine struct {
	ID     string         `json:"id"`
	Score  float64        `json:"score"`
	Fields map[string]any `json:"fields,omitempty"`
}

type queryLine struct {
	Query     string    `json:"query"`
	TotalHits uint64    `json:"total_hits"`
	Hits      []hitLine `json:"hits"`
	TookUS    int64     `json:"took_us"`
}

type queryErrorLine struct {
	Query string `json:"query"`
	Error string `json:"error"`
}

func runQueryFile(ctx context.Context, in *index.Instance, name string, stdin io.Reader, stdout io.Writer, opts searchOptions) error {
	r := stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return inputErrorf("check the --queries path", "cannot read queries: %v", err)
		}
		defer f.Close()
		r = f
	}
	bw := bufio.NewWriter(stdout)
	defer bw.Flush()
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("interrupted at line %d of the queries: %w", line, err)
		}
		q, err := parseDialectQuery(text, opts.dialect)
		var res *bleve.SearchResult
		if err == nil {
			qctx, cancel := opts.queryContext(ctx)
			res, err = query.Search(qctx, in, opts.request(q))
			cancel()
			if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("%w: the query ran past --timeout %v", query.ErrQueryTooExpensive, opts.timeout)
			}
		}
		switch {
		case err != nil && (errors.Is(err, query.ErrInvalidQuery) || errors.Is(err, query.ErrQueryTooExpensive)):
			if err := enc.Encode(queryErrorLine{Query: text, Error: queryError(err)}); err != nil {
				return err
			}
			continue
		case err != nil:
			return withNext(fmt.Errorf("query on line %d: %w", line, err), defaultNext(err))
		}
		out := queryLine{Query: text, TotalHits: res.Total, Hits: make([]hitLine, 0, len(res.Hits)), TookUS: res.Took.Microseconds()}
		for _, h := range res.Hits {
			out.Hits = append(out.Hits, hitLine{ID: h.ID, Score: h.Score, Fields: h.Fields})
		}
		if err := enc.Encode(out); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return inputErrorf("", "reading queries after line %d: %v", line, err)
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// printResults prints a search result as a table.
func printResults(w io.Writer, res *bleve.SearchResult, o searchOptions) {
	switch {
	case res.Total == 0:
		fmt.Fprintf(w, "no documents match (took %v)\n", res.Took.Round(time.Microsecond))
		return
	case len(res.Hits) == 0:
		fmt.Fprintf(w, "%d hits, none from %d on (took %v)\n", res.Total, o.from+1, res.Took.Round(time.Microsecond))
		return
	}
	fmt.Fprintf(w, "%d hits, showing %d-%d (took %v)\n\n", res.Total, o.from+1, o.from+len(res.Hits), res.Took.Round(time.Microsecond))
	cols := o.fields
	if len(cols) == 1 && cols[0] == "*" {
		cols = nil
		seen := map[string]bool{}
		for _, h := range res.Hits {
			for f := range h.Fields {
				if !seen[f] {
					seen[f] = true
					cols = append(cols, f)
				}
			}
		}
		slices.Sort(cols)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if o.alias {
		fmt.Fprint(tw, "RANK\tINSTANCE\tID\tSCORE")
	} else {
		fmt.Fprint(tw, "RANK\tID\tSCORE")
	}
	for _, f := range cols {
		fmt.Fprintf(tw, "\t%s", strings.ToUpper(f))
	}
	fmt.Fprintln(tw)
	for i, h := range res.Hits {
		if o.alias {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%.4f", o.from+i+1, cell(h.Index, 40), cell(h.ID, 40), h.Score)
		} else {
			fmt.Fprintf(tw, "%d\t%s\t%.4f", o.from+i+1, cell(h.ID, 40), h.Score)
		}
		for _, f := range cols {
			fmt.Fprintf(tw, "\t%s", cell(fieldText(h.Fields[f]), 60))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

// fieldText renders a stored field value for the table.
func fieldText(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case []any:
		parts := make([]string, len(v))
		for i, p := range v {
			parts[i] = fieldText(p)
		}
		return strings.Join(parts, ", ")
	}
	return fmt.Sprint(v)
}

// cell makes s fit one table cell: one line, at most max runes.
func cell(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return string(r[:max-1]) + "…"
}

// queryContext returns the context of one query: ctx with the --timeout.
func (o searchOptions) queryContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if o.timeout > 0 {
		return context.WithTimeout(ctx, o.timeout)
	}
	return context.WithCancel(ctx)
}
