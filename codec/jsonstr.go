package codec

import (
	"strconv"
	"unicode/utf8"
)

// AppendJSONString appends s as a JSON string literal. Quotes, backslashes
// and control characters are escaped as JSON requires, invalid UTF-8
// becomes U+FFFD, and everything else, including '<', '>' and '&', is
// written as it is: pools and firmware with hand-written parsers may not
// decode \u escapes in worker names or error texts. strconv.Quote is not
// used on purpose: its \x escapes are Go syntax, not JSON.
func AppendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\ufffd"...)
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// JSONString is AppendJSONString as a string.
func JSONString(s string) string { return string(AppendJSONString(make([]byte, 0, len(s)+2), s)) }

// The requests an upstream link sends. Ids are raw JSON (a number or a
// quoted string); every string parameter goes through AppendJSONString.

// AppendSubscribe appends mining.subscribe with the user agent.
func AppendSubscribe(dst, id []byte, userAgent string) []byte {
	dst = appendRequestHead(dst, id, MethodSubscribe)
	dst = AppendJSONString(dst, userAgent)
	return append(dst, "]}\n"...)
}

// AppendConfigureVersionRolling appends mining.configure asking for version
// rolling with the full mask: the pool answers with what it grants.
func AppendConfigureVersionRolling(dst, id []byte) []byte {
	dst = appendRequestHead(dst, id, MethodConfigure)
	return append(dst, `["`+VersionRollingExtension+`"],{"`+VersionRollingMaskKey+`":"ffffffff","`+VersionRollingMinBitsKey+`":0}]}`+"\n"...)
}

// AppendAuthorize appends mining.authorize.
func AppendAuthorize(dst, id []byte, user, password string) []byte {
	dst = appendRequestHead(dst, id, MethodAuthorize)
	dst = AppendJSONString(dst, user)
	dst = append(dst, ',')
	dst = AppendJSONString(dst, password)
	return append(dst, "]}\n"...)
}

// AppendGetCapabilities appends agent.get_capabilities with verrol and,
// when asked for, subres.
func AppendGetCapabilities(dst, id []byte, subres bool) []byte {
	dst = appendRequestHead(dst, id, MethodGetCapabilities)
	if subres {
		return append(dst, `["`+CapVersionRolling+`","`+CapSubmitResponse+`"]]}`+"\n"...)
	}
	return append(dst, `["`+CapVersionRolling+`"]]}`+"\n"...)
}

// AppendExtranonceSubscribe appends mining.extranonce.subscribe.
func AppendExtranonceSubscribe(dst, id []byte) []byte {
	return append(appendRequestHead(dst, id, MethodExtranonceSub), "]}\n"...)
}

// AppendSubmitHead appends a mining.submit request up to the opening quote
// of extranonce2; userJSON and jobIDJSON are already JSON strings (links
// quote them once). The caller appends extranonce2 as hex and then
// AppendSubmitTail: the split lets the extranonce layout write its bytes in
// place, without a copy per share.
func AppendSubmitHead(dst []byte, id uint64, userJSON, jobIDJSON []byte) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendUint(dst, id, 10)
	dst = append(dst, `,"method":"`+MethodSubmit+`","params":[`...)
	dst = append(dst, userJSON...)
	dst = append(dst, ',')
	dst = append(dst, jobIDJSON...)
	return append(dst, `,"`...)
}

// AppendSubmitTail finishes a mining.submit after extranonce2: ntime,
// nonce and, for version-rolling shares, the version bits.
func AppendSubmitTail(dst []byte, ntime, nonce, versionBits uint32, hasVersion bool) []byte {
	dst = append(dst, `","`...)
	dst = AppendHex32(dst, ntime)
	dst = append(dst, `","`...)
	dst = AppendHex32(dst, nonce)
	dst = append(dst, '"')
	if hasVersion {
		dst = append(dst, `,"`...)
		dst = AppendHex32(dst, versionBits)
		dst = append(dst, '"')
	}
	return append(dst, "]}\n"...)
}

// AppendSetExtranonce appends a mining.set_extranonce notification.
func AppendSetExtranonce(dst []byte, en1 string, en2Size int) []byte {
	dst = appendRequestHead(dst, nullID, MethodSetExtranonce)
	dst = AppendJSONString(dst, en1)
	dst = append(dst, ',')
	dst = strconv.AppendInt(dst, int64(en2Size), 10)
	return append(dst, "]}\n"...)
}

func appendRequestHead(dst, id []byte, method string) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendID(dst, id)
	dst = append(dst, `,"method":"`...)
	dst = append(dst, method...)
	return append(dst, `","params":[`...)
}
