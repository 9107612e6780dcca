package format

import (
	"strconv"
	"unicode/utf8"
)

// Printable returns s as a command may print it: unchanged when every
// rune of it is printable (strconv.IsPrint: letters, marks, numbers,
// punctuation, symbols and the ASCII space), otherwise quoted and escaped
// as strconv.Quote does. Strings a trace carries (symbol names, the
// outcome's detail) come from whoever wrote the file: printed raw, a
// terminal escape sequence or a newline in one would forge the lines
// around it.
func Printable(s string) string {
	for i, c := range s {
		if !strconv.IsPrint(c) || (c == utf8.RuneError && !validRuneAt(s, i)) {
			return strconv.Quote(s)
		}
	}
	return s
}

// validRuneAt says whether s holds a valid encoding of U+FFFD at i (not a
// byte that does not decode).
func validRuneAt(s string, i int) bool {
	_, n := utf8.DecodeRuneInString(s[i:])
	return n == 3
}
