package input

import (
	"errors"
	"strings"
	"testing"

	"github.com/blevesearch/bleve/v2/search"
)

func TestJSONString(t *testing.T) {
	good := map[string]string{
		`"abc"`:            "abc",
		`"é"`:              "é",
		`"\u00e9"`:         "é",
		`"\ud83d\ude00"`:   "😀",
		`"\ufffd"`:         "\ufffd",  // U+FFFD itself is a character like any other
		`"a\\ud800"`:       `a\ud800`, // an escaped backslash, not an escape
		`"\"\\u\\ud800\""`: `"\u\ud800"`,
	}
	for raw, want := range good {
		got, err := JSONString([]byte(raw))
		if err != nil || got != want {
			t.Errorf("JSONString(%s) = %q, %v; want %q", raw, got, err, want)
		}
	}
	bad := []string{
		"\"\xff\"", "\"\xfe\"", "\"a\xc3\"", // not UTF-8
		`"\ud800"`, `"\udfff"`, `"\ud800x"`, `"\ud800\u0041"`, `"x\udc00"`, // unpaired surrogates
		`5`, `null`, `""x`, `"`, ``,
	}
	for _, raw := range bad {
		if got, err := JSONString([]byte(raw)); err == nil || !errors.Is(err, ErrInvalid) {
			t.Errorf("JSONString(%q) = %q, %v; want an ErrInvalid error", raw, got, err)
		} else if strings.Contains(err.Error(), raw) && raw != "" {
			t.Errorf("error quotes the input: %v", err)
		}
	}
}

func TestSortStrings(t *testing.T) {
	for _, ok := range [][]string{nil, {"_id"}, {"-_score", "_id"}, {"votes"}, {"-votes", "+key", "summary.en"}} {
		if err := SortStrings(ok); err != nil {
			t.Errorf("SortStrings(%q): %v", ok, err)
		}
	}
	for _, bad := range [][]string{{"-"}, {""}, {"_nope"}, {"-", "", "_nope"}, {"--votes"}, {"a,b"}, {"+"}, {"_all"}} {
		if err := SortStrings(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("SortStrings(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	parsed := search.ParseSortOrderStrings([]string{"-", "_nope"})
	if err := Sort(parsed); !errors.Is(err, ErrInvalid) {
		t.Errorf("Sort(-,_nope) = %v", err)
	}
	if err := Sort(search.ParseSortOrderStrings([]string{"-_score", "_id", "votes"})); err != nil {
		t.Errorf("Sort of a good order: %v", err)
	}
}

func TestCheckDepth(t *testing.T) {
	deep := strings.Repeat(`{"conjuncts":[`, 4000) + `{"match":"x"}` + strings.Repeat(`]}`, 4000)
	if err := CheckDepth([]byte(deep), 100); !errors.Is(err, ErrInvalid) {
		t.Fatalf("4,000-deep query: %v", err)
	}
	ok := strings.Repeat(`[`, 50) + strings.Repeat(`]`, 50)
	if err := CheckDepth([]byte(ok), 50); err != nil {
		t.Fatalf("50 levels with a limit of 50: %v", err)
	}
	if err := CheckDepth([]byte(ok), 49); err == nil {
		t.Fatal("50 levels with a limit of 49 accepted")
	}
	// Brackets inside strings do not count, escaped quotes included.
	str := `{"a":"` + strings.Repeat(`[{\"`, 1000) + `"}`
	if err := CheckDepth([]byte(str), 2); err != nil {
		t.Fatalf("brackets in a string counted: %v", err)
	}
}
