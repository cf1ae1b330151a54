package config

import "testing"

func TestScanPositions(t *testing.T) {
	src := `# comment [not.a.table]
title = """
multi = 1
[fake]
"""
arr = [
  1, # comment ]
  "]",
  2,
]
lit = '''
x = 1'''
a.b."c.d" = 1
inline = { k = 1, j = [1,
  2] }

[upstream]   # trailing comment
connections = 2

[[listen]]
port = 1
  [[listen.pool]]
  host = "a"
  [[listen.pool]]
  host = "b"
  [listen.pool.extra]
  deep = true

[[listen]]
  [[listen.pool]]
  host = "c"
[ "quoted table" ]
'k' = "v"
`
	pos := scanPositions([]byte(src))
	for key, want := range map[string]int{
		"title":                        2,
		"arr":                          6,
		"lit":                          11,
		"a":                            13,
		"a.b":                          13,
		`a.b."c.d"`:                    13,
		"inline":                       14,
		"upstream":                     17,
		"upstream.connections":         18,
		"listen":                       20,
		"listen[0]":                    20,
		"listen[0].port":               21,
		"listen[0].pool":               22,
		"listen[0].pool[0].host":       23,
		"listen[0].pool[1]":            24,
		"listen[0].pool[1].host":       25,
		"listen[0].pool[1].extra":      26,
		"listen[0].pool[1].extra.deep": 27,
		"listen[1]":                    29,
		"listen[1].pool[0].host":       31,
		`"quoted table"`:               32,
		`"quoted table".k`:             33,
	} {
		if got := pos[key]; got != want {
			t.Errorf("%s: line %d, want %d", key, got, want)
		}
	}
	for _, bogus := range []string{"multi", "fake", "x", "k"} {
		if _, ok := pos[bogus]; ok {
			t.Errorf("text inside a value was taken for key %q", bogus)
		}
	}
	// Keys inside inline tables fall back to the enclosing key's line.
	p := keyPath{{name: "inline", index: -1}, {name: "j", index: 1}}
	if got := pos.line(p); got != 14 {
		t.Errorf("inline fallback: %d", got)
	}
	// An element of an inline array of tables falls back to the array.
	p = keyPath{{name: "listen", index: 0}, {name: "pool", index: 7}, {name: "host", index: -1}}
	if got := pos.line(p); got != 22 {
		t.Errorf("array fallback: %d", got)
	}
}

func TestKeyPathSpelling(t *testing.T) {
	p := keyPath{{name: "listen", index: 1}, {name: "pool", index: 0}, {name: "odd key", index: -1}}
	if got := p.dotted(); got != `listen.pool."odd key"` {
		t.Errorf("dotted = %s", got)
	}
	if got := p.indexed(); got != `listen[1].pool[0]."odd key"` {
		t.Errorf("indexed = %s", got)
	}
}

func TestSuggest(t *testing.T) {
	names := []string{"host", "port", "user", "tls", "tls_skip_verify", "protocol"}
	for in, want := range map[string]string{"hots": "host", "PORT": "port", "usr": "user", "protcol": "protocol", "zzzzzz": ""} {
		if got := suggest(in, names); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}
