package codec

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// MaxParams is how many request params the scanner records; mining.notify
// has nine, the longest Stratum message. Extra ones are counted but not kept.
const MaxParams = 10

// Kind is the JSON type of a scanned value.
type Kind uint8

// JSON value kinds.
const (
	KindInvalid Kind = iota
	KindString
	KindNumber
	KindBool
	KindNull
	KindArray
	KindObject
)

func (k Kind) String() string {
	return [...]string{"invalid", "string", "number", "bool", "null", "array", "object"}[k]
}

// Value is one scanned JSON value. Raw is its exact text; for strings without
// escapes Str is the content between the quotes. Both alias the input line.
type Value struct {
	Raw     []byte
	Str     []byte
	Kind    Kind
	escaped bool
}

// String returns a string value's content, decoding escapes when present.
func (v Value) String() (string, error) {
	if v.Kind != KindString {
		return "", fmt.Errorf("expected a string, got %s", v.Kind)
	}
	if !v.escaped {
		return string(v.Str), nil
	}
	var s string
	if err := json.Unmarshal(v.Raw, &s); err != nil {
		return "", err
	}
	return s, nil
}

// Request is one scanned JSON-RPC message as miners and pools send them:
// {"id":…,"method":"…","params":[…]} in any key order. Responses (result and
// error members) are scanned into Result and Error. Everything aliases the line,
// so scanning allocates nothing; copy what must outlive the line.
type Request struct {
	ID        []byte // raw id text: a number, a string with its quotes, or null; nil when absent
	Method    []byte
	Params    [MaxParams]Value
	NParams   int // may exceed MaxParams; only the first MaxParams are kept
	Result    Value
	Error     Value
	HasParams bool
}

// Param returns the i-th param, or an invalid Value when absent.
func (r *Request) Param(i int) Value {
	if i < 0 || i >= r.NParams || i >= MaxParams {
		return Value{}
	}
	return r.Params[i]
}

// IsResponse reports whether the message is a reply (no method).
func (r *Request) IsResponse() bool { return len(r.Method) == 0 }

// SyntaxError is a malformed line; Offset points at the byte that broke it.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("codec: invalid JSON at byte %d: %s", e.Offset, e.Msg)
}

var errNotObject = errors.New("codec: JSON-RPC message must be an object")

// ScanRequest parses one JSON-RPC line without allocating. Unknown members are
// skipped after being checked for well-formedness; a line that is not exactly
// one JSON object (plus whitespace) is an error.
func ScanRequest(line []byte, r *Request) error {
	*r = Request{}
	s := scanner{b: line}
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		if s.i < len(s.b) {
			return errNotObject
		}
		return &SyntaxError{Offset: s.i, Msg: "empty line"}
	}
	s.i++
	s.ws()
	if s.peek() == '}' {
		s.i++
	} else {
		for {
			s.ws()
			key, esc, err := s.str()
			if err != nil {
				return err
			}
			s.ws()
			if s.peek() != ':' {
				return s.err("expected ':'")
			}
			s.i++
			s.ws()
			k := key
			if esc {
				k = nil // escaped keys are never ours; skip their values
			}
			switch string(k) {
			case "id":
				v, err := s.value()
				if err != nil {
					return err
				}
				r.ID = v.Raw
			case "method":
				v, err := s.value()
				if err != nil {
					return err
				}
				if v.Kind == KindString {
					if v.escaped {
						return s.err("escaped method name")
					}
					r.Method = v.Str
				} else if v.Kind != KindNull {
					return s.err("method must be a string")
				}
			case "params":
				if err := s.params(r); err != nil {
					return err
				}
			case "result":
				v, err := s.value()
				if err != nil {
					return err
				}
				r.Result = v
			case "error":
				v, err := s.value()
				if err != nil {
					return err
				}
				r.Error = v
			default:
				if _, err := s.value(); err != nil {
					return err
				}
			}
			s.ws()
			c := s.peek()
			if c == ',' {
				s.i++
				continue
			}
			if c == '}' {
				s.i++
				break
			}
			return s.err("expected ',' or '}'")
		}
	}
	s.ws()
	if s.i != len(s.b) {
		return s.err("trailing data after the object")
	}
	return nil
}

type scanner struct {
	b []byte
	i int
}

func (s *scanner) err(msg string) error { return &SyntaxError{Offset: s.i, Msg: msg} }

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

// str scans a string starting at the opening quote and returns its content.
func (s *scanner) str() ([]byte, bool, error) {
	if s.peek() != '"' {
		return nil, false, s.err("expected a string")
	}
	s.i++
	start := s.i
	esc := false
	words := start + 16 // where the word-at-a-time skip is tried next
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			out := s.b[start:s.i]
			s.i++
			return out, esc, nil
		case c == '\\':
			esc = true
			s.i++
			if s.i >= len(s.b) {
				return nil, false, s.err("unterminated escape")
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				if s.i+5 > len(s.b) {
					return nil, false, s.err("short \\u escape")
				}
				for _, h := range s.b[s.i+1 : s.i+5] {
					if unhex(h) < 0 {
						return nil, false, s.err("bad \\u escape")
					}
				}
				s.i += 5
			default:
				return nil, false, s.err("bad escape")
			}
		case c < 0x20:
			return nil, false, s.err("control character in string")
		default:
			s.i++
			// Past the short strings of a share, Stratum strings are long
			// hex (coinbase parts, merkle branches): skip eight plain bytes
			// at a time up to the word that holds the end.
			// (A share's strings end before the first look; after a look
			// that finds the end near, the next is a word further.)
			if s.i >= words {
				for s.i+8 <= len(s.b) && !hasStringSpecial(binary.LittleEndian.Uint64(s.b[s.i:])) {
					s.i += 8
				}
				words = s.i + 8
			}
		}
	}
	return nil, false, s.err("unterminated string")
}

// hasStringSpecial reports whether one of the eight bytes of x ends or
// escapes a JSON string or is a control character: '"', '\\' or < 0x20.
// Bytes of 0x80 and above (UTF-8) are plain. The tests are the classic
// "has a zero byte" / "has a byte below n" word tricks, which never miss
// such a byte (they may not say which one it is; the caller looks).
func hasStringSpecial(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	below := (x - ones*0x20) &^ x
	quote := x ^ (ones * '"')
	slash := x ^ (ones * '\\')
	return (below|(quote-ones)&^quote|(slash-ones)&^slash)&highs != 0
}

func (s *scanner) value() (Value, error) { return s.valueDepth(0) }

const maxDepth = 32

func (s *scanner) valueDepth(depth int) (Value, error) {
	if depth > maxDepth {
		return Value{}, s.err("nesting too deep")
	}
	start := s.i
	switch c := s.peek(); {
	case c == '"':
		str, esc, err := s.str()
		if err != nil {
			return Value{}, err
		}
		return Value{Raw: s.b[start:s.i], Str: str, Kind: KindString, escaped: esc}, nil
	case c == '{':
		s.i++
		s.ws()
		if s.peek() == '}' {
			s.i++
			return Value{Raw: s.b[start:s.i], Kind: KindObject}, nil
		}
		for {
			s.ws()
			if _, _, err := s.str(); err != nil {
				return Value{}, err
			}
			s.ws()
			if s.peek() != ':' {
				return Value{}, s.err("expected ':'")
			}
			s.i++
			s.ws()
			if _, err := s.valueDepth(depth + 1); err != nil {
				return Value{}, err
			}
			s.ws()
			switch s.peek() {
			case ',':
				s.i++
				continue
			case '}':
				s.i++
				return Value{Raw: s.b[start:s.i], Kind: KindObject}, nil
			}
			return Value{}, s.err("expected ',' or '}'")
		}
	case c == '[':
		s.i++
		s.ws()
		if s.peek() == ']' {
			s.i++
			return Value{Raw: s.b[start:s.i], Kind: KindArray}, nil
		}
		for {
			s.ws()
			if _, err := s.valueDepth(depth + 1); err != nil {
				return Value{}, err
			}
			s.ws()
			switch s.peek() {
			case ',':
				s.i++
				continue
			case ']':
				s.i++
				return Value{Raw: s.b[start:s.i], Kind: KindArray}, nil
			}
			return Value{}, s.err("expected ',' or ']'")
		}
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case c == 't':
		return s.lit("true", KindBool)
	case c == 'f':
		return s.lit("false", KindBool)
	case c == 'n':
		return s.lit("null", KindNull)
	}
	return Value{}, s.err("unexpected character")
}

func (s *scanner) lit(word string, k Kind) (Value, error) {
	if len(s.b)-s.i < len(word) || string(s.b[s.i:s.i+len(word)]) != word {
		return Value{}, s.err("bad literal")
	}
	start := s.i
	s.i += len(word)
	return Value{Raw: s.b[start:s.i], Kind: k}, nil
}

func (s *scanner) number() (Value, error) {
	start := s.i
	if s.peek() == '-' {
		s.i++
	}
	digits := func() int {
		n := 0
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	intStart := s.i
	if digits() == 0 {
		return Value{}, s.err("bad number")
	}
	if s.b[intStart] == '0' && s.i-intStart > 1 {
		return Value{}, s.err("leading zero in number")
	}
	if s.peek() == '.' {
		s.i++
		if digits() == 0 {
			return Value{}, s.err("bad number")
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if digits() == 0 {
			return Value{}, s.err("bad number")
		}
	}
	return Value{Raw: s.b[start:s.i], Kind: KindNumber}, nil
}

func (s *scanner) params(r *Request) error {
	if s.peek() == 'n' {
		_, err := s.lit("null", KindNull)
		return err
	}
	if s.peek() != '[' {
		// Some clients send an object; keep it as the single param.
		v, err := s.value()
		if err != nil {
			return err
		}
		r.HasParams = true
		r.Params[0] = v
		r.NParams = 1
		return nil
	}
	r.HasParams = true
	s.i++
	s.ws()
	if s.peek() == ']' {
		s.i++
		return nil
	}
	for {
		s.ws()
		v, err := s.valueDepth(1)
		if err != nil {
			return err
		}
		if r.NParams < MaxParams {
			r.Params[r.NParams] = v
		}
		r.NParams++
		s.ws()
		switch s.peek() {
		case ',':
			s.i++
			continue
		case ']':
			s.i++
			return nil
		}
		return s.err("expected ',' or ']'")
	}
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// ScanArray scans a raw JSON array (a reply's result, say) into r's
// params, so its elements are read with r.Param like a request's.
func ScanArray(raw []byte, r *Request) error {
	return ScanRequest(append(append([]byte(`{"params":`), raw...), '}'), r)
}
