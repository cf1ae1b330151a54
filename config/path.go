package config

import (
	"strconv"
	"strings"
)

// pathElem is one step of a key path. index >= 0 marks an element of an array
// (of tables), so `listen[1].pool[0].host` keeps which table a key came from.
type pathElem struct {
	name  string
	index int
}

// keyPath addresses a value in the document. It is kept structured rather
// than as a string so that one path can be printed both the way TOML spells
// keys (`listen.pool.host`) and with indexes (`listen[0].pool[1].host`).
type keyPath []pathElem

func (p keyPath) child(name string) keyPath {
	out := make(keyPath, len(p), len(p)+1)
	copy(out, p)
	return append(out, pathElem{name: name, index: -1})
}

// elem returns the path of element i of the array p names.
func (p keyPath) elem(i int) keyPath {
	out := make(keyPath, len(p))
	copy(out, p)
	if len(out) > 0 {
		out[len(out)-1].index = i
	}
	return out
}

// dotted spells the path as a TOML key, without array indexes.
func (p keyPath) dotted() string {
	var b strings.Builder
	for i, e := range p {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(quoteKey(e.name))
	}
	return b.String()
}

// indexed spells the path with array indexes; it is also the lookup key of
// the position map.
func (p keyPath) indexed() string {
	var b strings.Builder
	for i, e := range p {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(quoteKey(e.name))
		if e.index >= 0 {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(e.index))
			b.WriteByte(']')
		}
	}
	return b.String()
}

// isBareKey reports whether s can be written as a TOML key without quotes.
func isBareKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isBareKeyChar(s[i]) {
			return false
		}
	}
	return true
}

func isBareKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

func quoteKey(s string) string {
	if isBareKey(s) {
		return s
	}
	return tomlString(s)
}
