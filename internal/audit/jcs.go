package audit

import "unicode/utf8"

// Canonicaler is implemented by changes that write their own RFC 8785 form,
// byte for byte what Canonical would produce from their JSON, without the
// marshal-and-reparse round trip (large batches are written this way).
type Canonicaler interface {
	CanonicalJSON() []byte
}

// AppendString appends s as an RFC 8785 JSON string: only '"', '\\' and
// control characters are escaped, the short forms where JSON has them,
// \u00xx with lower-case hex otherwise; everything else is written as UTF-8.
// Invalid UTF-8 is replaced by U+FFFD, as encoding/json does before RFC 8785
// canonicalisation.
func AppendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\b':
				b = append(b, '\\', 'b')
			case c == '\f':
				b = append(b, '\\', 'f')
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = utf8.AppendRune(b, utf8.RuneError)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
