// Package input checks what clients send — document ids inside JSON, sort
// orders, the nesting of JSON queries — the same way in the server and the
// CLI, before any of it reaches the engine.
//
// Its checks refuse rather than repair: a JSON string holding invalid UTF-8
// or an unpaired surrogate escape is refused, not turned into U+FFFD (which
// would make distinct ids collide); an empty or reserved sort field is
// refused, not ignored.
package input

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/blevesearch/bleve/v2/search"
)

// ErrInvalid is wrapped by every error of this package.
var ErrInvalid = errors.New("input: invalid")

// JSONString decodes raw, one JSON string, refusing what encoding/json
// would silently replace with U+FFFD: bytes that are not UTF-8, and \u
// escapes of unpaired UTF-16 surrogates. Its errors never quote raw.
func JSONString(raw []byte) (string, error) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", fmt.Errorf("%w: not a JSON string", ErrInvalid)
	}
	if !utf8.Valid(raw) {
		return "", fmt.Errorf("%w: the string is not valid UTF-8", ErrInvalid)
	}
	for i := 1; i < len(raw)-1; i++ {
		if raw[i] != '\\' {
			continue
		}
		i++
		if raw[i] != 'u' {
			continue
		}
		r, ok := hex4(raw, i+1)
		if !ok {
			break // malformed: json.Unmarshal reports it
		}
		i += 4
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return "", fmt.Errorf("%w: the string has an unpaired UTF-16 surrogate escape", ErrInvalid)
		case r >= 0xD800 && r <= 0xDBFF:
			lo, ok := rune(0), false
			if i+2 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
				lo, ok = hex4(raw, i+3)
			}
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return "", fmt.Errorf("%w: the string has an unpaired UTF-16 surrogate escape", ErrInvalid)
			}
			i += 6
		}
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%w: not a valid JSON string", ErrInvalid)
	}
	return s, nil
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// SortStrings checks a sort order given as bleve's strings ("-_score",
// "_id", "field", "-field"): each must name _score, _id or a field, with
// at most one leading sign; an empty item, a bare sign, a field starting
// with '_' (bleve's reserved names) or holding a comma is refused.
func SortStrings(order []string) error {
	if len(order) == 0 {
		return nil
	}
	for i, o := range order {
		if err := sortName(o); err != nil {
			return fmt.Errorf("%w: sort item %d %v", ErrInvalid, i+1, err)
		}
	}
	return nil
}

func sortName(o string) error {
	return fieldName(strings.TrimPrefix(strings.TrimPrefix(o, "-"), "+"))
}

// fieldName checks a sort item's name, its sign removed.
func fieldName(name string) error {
	switch {
	case name == "":
		return errors.New("names no field (write field, -field, _score or _id)")
	case name == "_id", name == "_score":
		return nil
	case strings.HasPrefix(name, "_"):
		return errors.New("names a reserved field (starting with '_'); only _score and _id sort")
	case strings.HasPrefix(name, "-"), strings.HasPrefix(name, "+"):
		return errors.New("has more than one sign")
	case strings.ContainsAny(name, ", \t\n"):
		return errors.New("holds a comma or a space (give one field per item)")
	}
	return nil
}

// Sort checks a parsed sort order (bleve's search.SortOrder, from strings
// or from JSON objects) by the rules of SortStrings.
func Sort(order search.SortOrder) error {
	for i, so := range order {
		f, ok := so.(*search.SortField)
		if !ok {
			continue // _score, _id, geo distance
		}
		if err := fieldName(f.Field); err != nil {
			return fmt.Errorf("%w: sort item %d %v", ErrInvalid, i+1, err)
		}
	}
	return nil
}

// CheckDepth returns an error when the JSON text b nests objects and
// arrays deeper than max. It scans b once, without decoding it (it does
// not validate it either), so that a deeply nested query is refused before
// a recursive parser spends time and memory on it.
func CheckDepth(b []byte, max int) error {
	depth, inString, escaped := 0, false, false
	for _, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{', c == '[':
			if depth++; depth > max {
				return fmt.Errorf("%w: the JSON nests deeper than %d levels", ErrInvalid, max)
			}
		case c == '}', c == ']':
			depth--
		}
	}
	return nil
}
