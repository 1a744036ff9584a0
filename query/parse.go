package query

import (
	"strings"

	"github.com/blevesearch/bleve/v2/search/query"
)

// The boolean dialect's grammar, loosest first:
//
//	query    = sequence EOF
//	sequence = or { or }                 juxtaposition: bleve's should/must/must-not clauses
//	or       = and { "OR" and }
//	and      = not { "AND" not }
//	not      = "NOT" not | signed
//	signed   = [ "+" | "-" ] primary
//	primary  = "(" sequence ")" | clause
//	clause   = one clause of bleve's query-string syntax, without its +/- prefix
//
// The parse tree keeps the shape of what was written; compile.go gives it
// meaning.

// node is a node of the parse tree: *clauseNode, *seqNode, *andNode,
// *orNode, *notNode or *signNode.
type node interface{ offset() int }

// clauseNode is one clause of bleve's syntax ("summary:crash", "votes:>=3",
// "\"disk full\"^2", …), parsed by bleve's own parser.
type clauseNode struct {
	pos   int
	parts []string    // its tokens as written
	q     query.Query // bleve's query for it
}

// seqNode is clauses side by side, with no operator between them, or a
// parenthesized group.
type seqNode struct {
	pos   int
	elems []node
}

type andNode struct {
	pos int
	ops []node
}

type orNode struct {
	pos int
	ops []node
}

type notNode struct {
	pos int
	x   node
}

// signNode is x marked with bleve's + (must) or - (must not).
type signNode struct {
	pos  int
	must bool // '+'; false for '-'
	x    node
}

func (n *clauseNode) offset() int { return n.pos }
func (n *seqNode) offset() int    { return n.pos }
func (n *andNode) offset() int    { return n.pos }
func (n *orNode) offset() int     { return n.pos }
func (n *notNode) offset() int    { return n.pos }
func (n *signNode) offset() int   { return n.pos }

type parser struct {
	text     string
	toks     []token
	i        int
	maxDepth int
}

// parse parses text in the boolean dialect into its parse tree. o has its
// defaults filled in.
func parse(text string, o Options) (*seqNode, error) {
	if len(text) > o.MaxBytes {
		return nil, newError(ErrTooLong, text, o.MaxBytes, "the query is %d bytes, over the limit of %d", len(text), o.MaxBytes)
	}
	toks, err := lex(text)
	if err != nil {
		return nil, err
	}
	p := &parser{text: text, toks: toks, maxDepth: o.MaxDepth}
	if p.peek().kind == tkEOF {
		return nil, syntaxError(text, 0, "the query is empty")
	}
	seq, err := p.sequence(0)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tkEOF {
		// Only a ')' stops a sequence early.
		return nil, syntaxError(text, t.pos, "this ')' closes no '('")
	}
	return seq, nil
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tkEOF {
		p.i++
	}
	return t
}

// startsOperand reports whether a token can begin an operand.
func startsOperand(k tokenKind) bool {
	switch k {
	case tkWord, tkPhrase, tkPlus, tkMinus, tkLParen, tkNot:
		return true
	}
	return false
}

func (p *parser) expectOperand(after string) error {
	t := p.peek()
	if startsOperand(t.kind) {
		return nil
	}
	return syntaxError(p.text, t.pos, "expected a term, a phrase, '(' or NOT after %s, found %s", after, t.kind.describe())
}

func (p *parser) deeper(depth int, at token) error {
	if depth+1 > p.maxDepth {
		return newError(ErrTooDeep, p.text, at.pos, "parentheses, NOT and +/- nest deeper than %d levels here; flatten the query", p.maxDepth)
	}
	return nil
}

func (p *parser) sequence(depth int) (*seqNode, error) {
	seq := &seqNode{pos: p.peek().pos}
	for {
		t := p.peek()
		if t.kind == tkEOF || t.kind == tkRParen {
			return seq, nil
		}
		if !startsOperand(t.kind) {
			return nil, syntaxError(p.text, t.pos, "expected a term, a phrase, '(', NOT, '+' or '-', found %s", t.kind.describe())
		}
		n, err := p.or(depth)
		if err != nil {
			return nil, err
		}
		seq.elems = append(seq.elems, n)
	}
}

func (p *parser) or(depth int) (node, error) {
	first, err := p.and(depth)
	if err != nil || p.peek().kind != tkOr {
		return first, err
	}
	n := &orNode{pos: first.offset(), ops: []node{first}}
	for p.peek().kind == tkOr {
		p.next()
		if err := p.expectOperand("OR"); err != nil {
			return nil, err
		}
		x, err := p.and(depth)
		if err != nil {
			return nil, err
		}
		n.ops = append(n.ops, x)
	}
	return n, nil
}

func (p *parser) and(depth int) (node, error) {
	first, err := p.not(depth)
	if err != nil || p.peek().kind != tkAnd {
		return first, err
	}
	n := &andNode{pos: first.offset(), ops: []node{first}}
	for p.peek().kind == tkAnd {
		p.next()
		if err := p.expectOperand("AND"); err != nil {
			return nil, err
		}
		x, err := p.not(depth)
		if err != nil {
			return nil, err
		}
		n.ops = append(n.ops, x)
	}
	return n, nil
}

func (p *parser) not(depth int) (node, error) {
	t := p.peek()
	if t.kind != tkNot {
		return p.signed(depth)
	}
	if err := p.deeper(depth, t); err != nil {
		return nil, err
	}
	p.next()
	if err := p.expectOperand("NOT"); err != nil {
		return nil, err
	}
	x, err := p.not(depth + 1)
	if err != nil {
		return nil, err
	}
	return &notNode{pos: t.pos, x: x}, nil
}

func (p *parser) signed(depth int) (node, error) {
	t := p.peek()
	if t.kind != tkPlus && t.kind != tkMinus {
		return p.primary(depth)
	}
	if err := p.deeper(depth, t); err != nil {
		return nil, err
	}
	p.next()
	switch k := p.peek().kind; k {
	case tkWord, tkPhrase, tkLParen:
	default:
		return nil, syntaxError(p.text, p.peek().pos, "expected a term, a phrase or '(' after %s, found %s", t.kind.describe(), k.describe())
	}
	x, err := p.primary(depth + 1)
	if err != nil {
		return nil, err
	}
	return &signNode{pos: t.pos, must: t.kind == tkPlus, x: x}, nil
}

func (p *parser) primary(depth int) (node, error) {
	t := p.peek()
	switch t.kind {
	case tkWord, tkPhrase:
		return p.clause()
	case tkLParen:
		if err := p.deeper(depth, t); err != nil {
			return nil, err
		}
		p.next()
		seq, err := p.sequence(depth + 1)
		if err != nil {
			return nil, err
		}
		switch c := p.peek(); c.kind {
		case tkRParen:
			p.next()
		default:
			return nil, syntaxError(p.text, c.pos, "expected ')' to close the '(' at column %d, found %s", column(p.text, t.pos), c.kind.describe())
		}
		if len(seq.elems) == 0 {
			return nil, syntaxError(p.text, t.pos, "empty parentheses: expected a term, a phrase or '(' inside")
		}
		if b := p.peek(); b.kind == tkBoost || b.kind == tkTilde {
			return nil, syntaxError(p.text, b.pos, "%s applies to a term or a phrase, not to a group in parentheses", b.kind.describe())
		}
		seq.pos = t.pos
		return seq, nil
	}
	return nil, syntaxError(p.text, t.pos, "expected a term, a phrase or '(', found %s", t.kind.describe())
}

// clause reads one clause of bleve's syntax: a term or phrase; if a ':'
// follows, it was a field name and a value follows ('>', '<', '=' and a
// '-' of a negative number before it); then a fuzziness and a boost. The
// tokens go to bleve's own parser, which checks the combination (a
// fuzziness on a phrase, a range on a term, …) and builds the query, so
// that a clause means exactly what it means in bleve's syntax.
func (p *parser) clause() (node, error) {
	first := p.next()
	parts := []string{first.raw}
	take := func(kinds ...tokenKind) bool {
		for _, k := range kinds {
			if p.peek().kind == k {
				parts = append(parts, p.next().raw)
				return true
			}
		}
		return false
	}
	if take(tkColon) {
		if take(tkGreater, tkLess) {
			take(tkEqual)
		}
		take(tkMinus)
		if !take(tkWord, tkPhrase) {
			t := p.peek()
			return nil, syntaxError(p.text, t.pos, "expected a value after the field name and %s, found %s", p.toks[p.i-1].kind.describe(), t.kind.describe())
		}
	}
	take(tkTilde)
	take(tkBoost)
	text := strings.Join(parts, " ")
	parsed, err := query.NewQueryStringQuery(text).Parse()
	if err != nil {
		return nil, syntaxError(p.text, first.pos, "this clause is not valid bleve query-string syntax (%s)", bleveMessage(err))
	}
	q, err := onlyClause(parsed)
	if err != nil {
		return nil, syntaxError(p.text, first.pos, "%v", err)
	}
	return &clauseNode{pos: first.pos, parts: parts, q: q}, nil
}

// onlyClause returns the one should clause of the boolean query bleve's
// parser builds for a single clause without a prefix.
func onlyClause(q query.Query) (query.Query, error) {
	b, ok := q.(*query.BooleanQuery)
	if ok && b.Must == nil && b.MustNot == nil && b.Filter == nil {
		if d, ok := b.Should.(*query.DisjunctionQuery); ok && len(d.Disjuncts) == 1 {
			return d.Disjuncts[0], nil
		}
	}
	return nil, errInternal("bleve's parser did not read this clause as one clause")
}

func column(text string, offset int) int {
	return newError(ErrSyntax, text, offset, "").Column
}
