package query

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// tokenKind is the kind of a token of the boolean dialect. The kinds of
// bleve's own lexer are kept (term, phrase, + - : > < = ^boost ~fuzziness),
// and the dialect adds parentheses and the AND, OR and NOT keywords.
type tokenKind int

const (
	tkEOF    tokenKind = iota
	tkWord             // a term, number, wildcard or /regexp/, escapes kept as written
	tkPhrase           // "a quoted phrase", quotes included
	tkPlus
	tkMinus
	tkColon
	tkGreater
	tkLess
	tkEqual
	tkBoost // ^2, the caret included
	tkTilde // ~1, the tilde included
	tkLParen
	tkRParen
	tkAnd
	tkOr
	tkNot
)

// describe names a token kind for an error message. It never shows the
// token's text: a query's terms stay out of errors and logs.
func (k tokenKind) describe() string {
	switch k {
	case tkEOF:
		return "the end of the query"
	case tkWord:
		return "a term"
	case tkPhrase:
		return "a phrase"
	case tkPlus:
		return "'+'"
	case tkMinus:
		return "'-'"
	case tkColon:
		return "':'"
	case tkGreater:
		return "'>'"
	case tkLess:
		return "'<'"
	case tkEqual:
		return "'='"
	case tkBoost:
		return "a boost '^'"
	case tkTilde:
		return "a fuzziness '~'"
	case tkLParen:
		return "'('"
	case tkRParen:
		return "')'"
	case tkAnd:
		return "AND"
	case tkOr:
		return "OR"
	case tkNot:
		return "NOT"
	}
	return fmt.Sprintf("token kind %d", int(k))
}

// token is one token: its kind, and its raw text as written, which is the
// byte range [pos, end) of the input.
type token struct {
	kind     tokenKind
	pos, end int
	raw      string
}

// lex splits text into tokens. It follows bleve's query-string lexer
// (search/query/query_string_lex.go) so that a clause's tokens are the ones
// bleve sees, with three differences that make the dialect: any Unicode
// white space separates tokens (bleve's only ends a term at a space), an
// unescaped '(' or ')' outside a phrase or a /regexp/ is a token of its
// own, and the words AND, OR and NOT, written exactly so, are operators,
// as are && and || (which bleve's analyzers would drop as punctuation,
// silently turning "a && b" into "a b").
func lex(text string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(text) {
		r, size := utf8.DecodeRuneInString(text[i:])
		start := i
		switch {
		case unicode.IsSpace(r):
			i += size
			continue
		case r == '"':
			end, ok := scanPhrase(text, i+size)
			if !ok {
				return nil, syntaxError(text, start, "this phrase has no closing '\"'")
			}
			toks = append(toks, token{kind: tkPhrase, pos: start, end: end, raw: text[start:end]})
			i = end
			continue
		case r == '(' || r == ')':
			k := tkLParen
			if r == ')' {
				k = tkRParen
			}
			toks = append(toks, token{kind: k, pos: start, end: i + 1, raw: text[start : i+1]})
			i++
			continue
		case r == '\\' && i+size == len(text):
			// bleve drops a backslash that ends the query.
			i += size
			continue
		}
		var k tokenKind
		switch r {
		case '+':
			k = tkPlus
		case '-':
			k = tkMinus
		case ':':
			k = tkColon
		case '>':
			k = tkGreater
		case '<':
			k = tkLess
		case '=':
			k = tkEqual
		}
		if k != tkEOF {
			toks = append(toks, token{kind: k, pos: start, end: i + size, raw: text[start : i+size]})
			i += size
			continue
		}
		var end int
		switch r {
		case '^':
			k, end = tkBoost, scanSuffix(text, i+size)
		case '~':
			k, end = tkTilde, scanSuffix(text, i+size)
		default:
			k, end = tkWord, scanWord(text, i)
		}
		t := token{kind: k, pos: start, end: end, raw: text[start:end]}
		if k == tkWord {
			switch t.raw {
			case "AND", "&&":
				t.kind = tkAnd
			case "OR", "||":
				t.kind = tkOr
			case "NOT":
				t.kind = tkNot
			}
		}
		toks = append(toks, t)
		i = end
	}
	return append(toks, token{kind: tkEOF, pos: len(text), end: len(text)}), nil
}

// scanPhrase returns the end of a phrase whose opening quote ends at i: just
// after the first unescaped '"'.
func scanPhrase(text string, i int) (int, bool) {
	for i < len(text) {
		r, size := utf8.DecodeRuneInString(text[i:])
		switch r {
		case '\\':
			i += size
			if i < len(text) {
				_, size = utf8.DecodeRuneInString(text[i:])
			} else {
				size = 0
			}
		case '"':
			return i + size, true
		}
		i += size
	}
	return i, false
}

// scanSuffix returns the end of a boost or fuzziness value starting at i:
// bleve reads it up to white space; the dialect also stops at a
// parenthesis.
func scanSuffix(text string, i int) int {
	for i < len(text) {
		r, size := utf8.DecodeRuneInString(text[i:])
		switch {
		case r == '\\':
			i += size
			if i < len(text) {
				_, size = utf8.DecodeRuneInString(text[i:])
				i += size
			}
			continue
		case unicode.IsSpace(r) || r == '(' || r == ')':
			return i
		}
		i += size
	}
	return i
}

// scanWord returns the end of a term starting at i. Like bleve's, a term
// ends at white space, ':', '^' or '~' unless escaped; the dialect also
// ends it at '(' or ')', except inside a /regexp/ (a term that starts with
// '/', up to its next unescaped '/'), so that /(a|b)c/ stays one term.
func scanWord(text string, i int) int {
	inRegexp := text[i] == '/'
	if inRegexp {
		i++
	}
	for i < len(text) {
		r, size := utf8.DecodeRuneInString(text[i:])
		switch {
		case r == '\\':
			i += size
			if i < len(text) {
				_, size = utf8.DecodeRuneInString(text[i:])
				i += size
			}
			continue
		case unicode.IsSpace(r) || r == ':' || r == '^' || r == '~':
			return i
		case r == '/':
			inRegexp = false
		case (r == '(' || r == ')') && !inRegexp:
			return i
		}
		i += size
	}
	return i
}
