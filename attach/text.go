package attach

import (
	"bytes"
	"mime"
	"net/http"
	"path"
	"strings"
	"unicode/utf8"
)

// textTypes are the content types given to text files whose upload names
// none, by extension. (mime.TypeByExtension is not used: it reads the
// host's tables, and the result must not depend on the host.)
var textTypes = map[string]string{
	".txt":    "text/plain; charset=utf-8",
	".text":   "text/plain; charset=utf-8",
	".log":    "text/x-log",
	".json":   "application/json",
	".ndjson": "application/x-ndjson",
	".xml":    "application/xml",
	".csv":    "text/csv",
	".md":     "text/markdown",
}

// GuessType names the content type of an upload that does not say: by
// extension for the common text formats, else sniffed from the first 512
// bytes (net/http.DetectContentType).
func GuessType(name string, first []byte) string {
	if ct, ok := textTypes[strings.ToLower(path.Ext(name))]; ok {
		return ct
	}
	return http.DetectContentType(first)
}

// IsText reports whether an attachment's text is extracted: text/*, JSON,
// XML (and the +json, +xml types), and logs (.log files whatever their
// declared type, text/x-log).
func IsText(contentType, name string) bool {
	if strings.HasSuffix(strings.ToLower(name), ".log") {
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	switch {
	case strings.HasPrefix(mt, "text/"),
		mt == "application/json", mt == "application/xml", mt == "application/x-ndjson",
		strings.HasSuffix(mt, "+json"), strings.HasSuffix(mt, "+xml"):
		return true
	}
	return false
}

// Extract returns a TextExtractor for an upload whose content type, name
// and first chunk are given, or nil when its text is not extracted: a type
// that is not text (IsText), or a NUL byte in the first 8 KiB.
func Extract(contentType, name string, first []byte) *TextExtractor {
	if IsText(contentType, name) && !bytes.Contains(first[:min(len(first), 8192)], []byte{0}) {
		return &TextExtractor{}
	}
	return nil
}

// TextExtractor keeps the beginning of an upload's contents as text. The
// zero value is ready to use.
type TextExtractor struct {
	raw  []byte
	over bool // the contents went on past what raw keeps
}

// Write takes the next bytes of the contents; it keeps no more than MaxText
// bytes (and a character's worth more) in all.
func (x *TextExtractor) Write(p []byte) {
	room := MaxText + utf8.UTFMax - len(x.raw)
	if len(p) > room {
		p, x.over = p[:room], true
	}
	x.raw = append(x.raw, p...)
}

// Result returns the text: UTF-8 (a byte-order mark dropped, invalid bytes
// replaced by U+FFFD), at most MaxText bytes, cut at a character boundary,
// and whether it was cut. It clears what the extractor kept.
func (x *TextExtractor) Result() ([]byte, bool) {
	raw := bytes.TrimPrefix(x.raw, []byte("\xef\xbb\xbf"))
	truncated := x.over
	if len(raw) > MaxText {
		raw, truncated = raw[:MaxText], true
		// Drop a character cut in two by the limit.
		for j := 1; j <= utf8.UTFMax && j <= len(raw); j++ {
			if utf8.RuneStart(raw[len(raw)-j]) {
				if !utf8.FullRune(raw[len(raw)-j:]) {
					raw = raw[:len(raw)-j]
				}
				break
			}
		}
	}
	s := bytes.ToValidUTF8(raw, []byte("\uFFFD"))
	if len(s) > MaxText {
		n := MaxText
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s, truncated = s[:n], true
	}
	clear(x.raw)
	x.raw = nil
	return s, truncated
}
