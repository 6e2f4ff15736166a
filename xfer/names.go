package xfer

import (
	"errors"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on a received path, whatever the sender claims.
const (
	MaxPathBytes = 1024 // bytes of a whole relative path
	// MaxNameBytes is the bytes of one path element: what Linux allows
	// (255), less room for " (9999)" and ".part".
	MaxNameBytes  = 255 - len(" (9999)") - len(partSuffix)
	MaxPathDepth  = 32 // folders in a path
	MaxOfferFiles = 100_000
)

// ErrUnsafeName is returned by SafePath for a name that leaves nothing
// usable once every unsafe part is removed.
var ErrUnsafeName = errors.New("no usable file name")

// SafePath reduces a path received from a peer to a relative, slash-
// separated path that stays inside the receiving folder: elements are
// split on '/' and '\', empty elements, "." and ".." are dropped (so
// "../x" and "/etc/passwd" land as "x" and "etc/passwd"), control
// characters (C0, DEL, C1), bidirectional formatting characters and
// invalid UTF-8 become '_', leading and trailing spaces and dots of an
// element are trimmed, and each element and the whole path are kept
// within MaxNameBytes, MaxPathBytes and MaxPathDepth. The result is never
// empty, absolute, or containing "..": it is a name SafePath returns
// unchanged.
func SafePath(name string) (string, error) {
	var elems []string
	for _, e := range strings.FieldsFunc(name, func(r rune) bool { return r == '/' || r == '\\' }) {
		e = cleanElem(e)
		if e == "" {
			continue
		}
		elems = append(elems, e)
	}
	if len(elems) == 0 {
		return "", ErrUnsafeName
	}
	if len(elems) > MaxPathDepth+1 {
		// Keep the file's own name and the folders nearest to it.
		elems = elems[len(elems)-MaxPathDepth-1:]
	}
	p := strings.Join(elems, "/")
	for len(p) > MaxPathBytes && len(elems) > 1 {
		elems = elems[1:]
		p = strings.Join(elems, "/")
	}
	return p, nil
}

// cleanElem makes one path element safe, or returns "" when nothing is left.
func cleanElem(e string) string {
	var b strings.Builder
	for i := 0; i < len(e); {
		r, size := utf8.DecodeRuneInString(e[i:])
		if (r == utf8.RuneError && size == 1) || unsafeRune(r) {
			b.WriteByte('_')
		} else {
			b.WriteString(e[i : i+size])
		}
		i += size
	}
	s := strings.Trim(b.String(), " .")
	if s == "" {
		return ""
	}
	if len(s) > MaxNameBytes {
		s = clipName(s, MaxNameBytes)
	}
	return s
}

// unsafeRune reports what must never reach a file name or a terminal:
// control characters, DEL, C1 controls, bidirectional formatting and
// other invisible format characters.
func unsafeRune(r rune) bool {
	return r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) ||
		r == 0x061c || r == 0x200e || r == 0x200f ||
		(r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) ||
		r == 0xfeff || unicode.Is(unicode.Cf, r) && r != 0x200d // keep ZWJ: emoji need it
}

// clipName shortens s to at most n bytes on a rune boundary, keeping its
// extension (".tar.gz" style suffixes of up to 16 bytes).
func clipName(s string, n int) string {
	ext := path.Ext(s)
	if len(ext) > 16 || len(ext) >= n {
		ext = ""
	}
	base := s[:len(s)-len(ext)]
	keep := n - len(ext)
	for keep > 0 && !utf8.RuneStart(base[keep]) {
		keep--
	}
	return strings.TrimRight(base[:keep], " .") + ext
}

// partSuffix marks a file still being received.
const partSuffix = ".part"

// numbered returns name with " (n)" before its extension: "a.txt" with 1
// is "a (1).txt"; a name without extension gets it at the end.
func numbered(name string, n int) string {
	dir, file := path.Split(name)
	ext := path.Ext(file)
	if ext == file { // ".bashrc"
		ext = ""
	}
	base := file[:len(file)-len(ext)]
	return dir + base + " (" + itoa(n) + ")" + ext
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}
