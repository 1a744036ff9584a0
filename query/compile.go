package query

import (
	"fmt"

	"github.com/blevesearch/bleve/v2/search/query"
)

// compile turns a parsed query of the boolean dialect into bleve queries.
// Every boolean it builds is bleve's query-string boolean
// (query.NewBooleanQueryForQueryString), the one bleve's own parser
// builds, so that a clause with no terms after analysis (a stop word) is
// left out the way bleve's query string leaves it out:
//
//	sequence  → must: the '+' elements, should: the plain ones,
//	            must not: the '-' and NOT elements
//	a AND b   → must: a, b (an operand NOT x or -x goes to must not: x)
//	a OR b    → should: a, b
//	NOT x, -x → must not: x
//	+x, (x)   → x
//
// A query without AND, OR, NOT or parentheses compiles to exactly the
// query bleve's parser builds for it.
func compile(top *seqNode) query.Query {
	if len(top.elems) == 1 {
		switch e := top.elems[0].(type) {
		case *clauseNode, *signNode:
			// As bleve builds it, so that the default and the dialect agree.
		default:
			return compileNode(e)
		}
	}
	return compileSeq(top)
}

func compileNode(n node) query.Query {
	switch n := n.(type) {
	case *clauseNode:
		return n.q
	case *seqNode:
		if len(n.elems) == 1 {
			// A one-element group means its element: a boolean with a
			// single should or must clause matches what the clause
			// matches, and NOT and '-' compile to a must-not boolean
			// either way.
			return compileNode(n.elems[0])
		}
		return compileSeq(n)
	case *andNode:
		var must, mustNot []query.Query
		for _, op := range n.ops {
			switch op := op.(type) {
			case *notNode:
				mustNot = append(mustNot, compileNode(op.x))
			case *signNode:
				if op.must {
					must = append(must, compileNode(op.x))
				} else {
					mustNot = append(mustNot, compileNode(op.x))
				}
			default:
				must = append(must, compileNode(op))
			}
		}
		return query.NewBooleanQueryForQueryString(must, nil, mustNot)
	case *orNode:
		should := make([]query.Query, len(n.ops))
		for i, op := range n.ops {
			should[i] = compileNode(op)
		}
		return query.NewBooleanQueryForQueryString(nil, should, nil)
	case *notNode:
		return query.NewBooleanQueryForQueryString(nil, nil, []query.Query{compileNode(n.x)})
	case *signNode:
		if n.must {
			return compileNode(n.x)
		}
		return query.NewBooleanQueryForQueryString(nil, nil, []query.Query{compileNode(n.x)})
	}
	panic(fmt.Sprintf("query: internal error: no compilation for node %T", n))
}

// compileSeq compiles clauses side by side as bleve's query string does.
func compileSeq(s *seqNode) query.Query {
	var must, should, mustNot []query.Query
	for _, e := range s.elems {
		switch e := e.(type) {
		case *signNode:
			if e.must {
				must = append(must, compileNode(e.x))
			} else {
				mustNot = append(mustNot, compileNode(e.x))
			}
		case *notNode:
			mustNot = append(mustNot, compileNode(e.x))
		default:
			should = append(should, compileNode(e))
		}
	}
	return query.NewBooleanQueryForQueryString(must, should, mustNot)
}
