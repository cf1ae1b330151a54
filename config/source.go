package config

// The TOML decoder does not expose where a key was written (its position
// table is private and keyed without array indexes), yet every error must
// name a line. This file recovers lines by scanning the source once. The
// parser has already accepted the document, so the scanner can be lenient:
// it only needs to follow table headers, keys and the extent of values.

// positions maps an indexed key path (keyPath.indexed) to its 1-based line.
type positions map[string]int

// line finds the line of p, falling back to the nearest enclosing key or
// table that was seen (keys inside inline tables have no entry of their own).
func (ps positions) line(p keyPath) int {
	if ps == nil {
		return 0
	}
	for n := len(p); n > 0; n-- {
		q := p[:n]
		if l, ok := ps[q.indexed()]; ok {
			return l
		}
		if q[n-1].index >= 0 {
			r := make(keyPath, n)
			copy(r, q)
			r[n-1].index = -1
			if l, ok := ps[r.indexed()]; ok {
				return l
			}
		}
	}
	return 0
}

type posScanner struct {
	src    []byte
	i      int
	line   int
	table  keyPath
	counts map[string]int // array-of-tables path -> number of elements so far
	pos    positions
}

func scanPositions(src []byte) positions {
	s := &posScanner{src: src, line: 1, counts: map[string]int{}, pos: positions{}}
	for {
		s.skipBlank()
		if s.i >= len(s.src) {
			return s.pos
		}
		start := s.line
		if s.src[s.i] == '[' {
			s.header(start)
		} else {
			s.keyValue(start)
		}
		s.skipLine()
	}
}

func (s *posScanner) peek(off int) byte {
	if s.i+off < len(s.src) {
		return s.src[s.i+off]
	}
	return 0
}

// skipBlank skips whitespace, newlines and comments.
func (s *posScanner) skipBlank() {
	for s.i < len(s.src) {
		switch c := s.src[s.i]; c {
		case ' ', '\t', '\r':
			s.i++
		case '\n':
			s.line++
			s.i++
		case '#':
			s.skipLine()
		default:
			return
		}
	}
}

// skipLine moves to the start of the next line.
func (s *posScanner) skipLine() {
	for s.i < len(s.src) {
		c := s.src[s.i]
		s.i++
		if c == '\n' {
			s.line++
			return
		}
	}
}

func (s *posScanner) skipSpaces() {
	for s.i < len(s.src) && (s.src[s.i] == ' ' || s.src[s.i] == '\t') {
		s.i++
	}
}

// keySegments reads a dotted key such as `a."b.c".d`.
func (s *posScanner) keySegments() []string {
	var segs []string
	for {
		s.skipSpaces()
		if s.i >= len(s.src) {
			return segs
		}
		switch c := s.src[s.i]; {
		case c == '"':
			segs = append(segs, s.quoted('"'))
		case c == '\'':
			segs = append(segs, s.quoted('\''))
		case isBareKeyChar(c):
			j := s.i
			for s.i < len(s.src) && isBareKeyChar(s.src[s.i]) {
				s.i++
			}
			segs = append(segs, string(s.src[j:s.i]))
		default:
			return segs
		}
		s.skipSpaces()
		if s.peek(0) != '.' {
			return segs
		}
		s.i++
	}
}

// quoted reads a one-line quoted key and returns its text (escapes are
// decoded only for the common cases; positions are best effort).
func (s *posScanner) quoted(q byte) string {
	s.i++ // opening quote
	var out []byte
	for s.i < len(s.src) && s.src[s.i] != '\n' {
		c := s.src[s.i]
		s.i++
		if c == q {
			return string(out)
		}
		if q == '"' && c == '\\' && s.i < len(s.src) {
			e := s.src[s.i]
			s.i++
			switch e {
			case 'n':
				c = '\n'
			case 't':
				c = '\t'
			default:
				c = e
			}
		}
		out = append(out, c)
	}
	return string(out)
}

func (s *posScanner) resolve(segs []string) keyPath {
	var p keyPath
	for _, seg := range segs {
		p = p.child(seg)
		if n := s.counts[p.indexed()]; n > 0 {
			p[len(p)-1].index = n - 1
		}
	}
	return p
}

func (s *posScanner) header(line int) {
	s.i++
	array := s.peek(0) == '['
	if array {
		s.i++
	}
	segs := s.keySegments()
	if len(segs) == 0 {
		return
	}
	p := s.resolve(segs[:len(segs)-1]).child(segs[len(segs)-1])
	if array {
		k := p.indexed()
		s.counts[k]++
		p = p.elem(s.counts[k] - 1)
		if _, ok := s.pos[k]; !ok {
			s.pos[k] = line // the array itself: its first table
		}
	} else if n := s.counts[p.indexed()]; n > 0 {
		p = p.elem(n - 1)
	}
	s.pos[p.indexed()] = line
	s.table = p
}

func (s *posScanner) keyValue(line int) {
	segs := s.keySegments()
	if len(segs) == 0 {
		return
	}
	p := s.table
	for _, seg := range segs {
		p = p.child(seg)
		if _, ok := s.pos[p.indexed()]; !ok {
			s.pos[p.indexed()] = line
		}
	}
	s.skipSpaces()
	if s.peek(0) != '=' {
		return
	}
	s.i++
	s.skipSpaces()
	s.skipValue()
}

// skipValue moves past one value, which may span lines (multi-line strings,
// arrays), leaving the cursor on the rest of the value's last line.
func (s *posScanner) skipValue() {
	depth := 0
	for s.i < len(s.src) {
		c := s.src[s.i]
		switch {
		case c == '"' || c == '\'':
			s.skipString(c)
			if depth == 0 {
				return
			}
			continue
		case c == '[' || c == '{':
			depth++
		case c == ']' || c == '}':
			depth--
			if depth <= 0 {
				s.i++
				return
			}
		case c == '#':
			if depth == 0 {
				return
			}
			for s.i < len(s.src) && s.src[s.i] != '\n' {
				s.i++
			}
			continue
		case c == '\n':
			if depth == 0 {
				return
			}
			s.line++
		}
		s.i++
	}
}

func (s *posScanner) skipString(q byte) {
	multi := s.peek(1) == q && s.peek(2) == q
	if multi {
		s.i += 3
	} else {
		s.i++
	}
	for s.i < len(s.src) {
		c := s.src[s.i]
		switch {
		case c == '\\' && q == '"':
			s.i++
			if s.peek(0) == '\n' {
				s.line++
			}
		case c == '\n':
			if !multi {
				return
			}
			s.line++
		case c == q:
			if !multi {
				s.i++
				return
			}
			if s.peek(1) == q && s.peek(2) == q {
				s.i += 3
				// A closing delimiter may be followed by up to two more quotes
				// that belong to the string.
				for s.peek(0) == q {
					s.i++
				}
				return
			}
		}
		s.i++
	}
}
