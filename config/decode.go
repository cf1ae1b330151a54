package config

import (
	"encoding"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"
)

// decoder maps the generic tree produced by the TOML parser onto Go structs.
// BurntSushi/toml's own struct decoding falls back to case-insensitive field
// matching, so `Port = 1` would silently fill `port`; doing the mapping here
// makes every key match a tag exactly or be refused, and lets each error
// carry a line and a key path.
type decoder struct {
	file   string
	pos    positions
	prefix string // put before messages, e.g. "plugins[1] (worker-name): "
	base   int    // leading path elements left out of printed key names
}

var (
	durationType        = reflect.TypeFor[time.Duration]()
	timeType            = reflect.TypeFor[time.Time]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// presetter is a table type whose defaults are set before its keys are
// read. Tables inside arrays of tables start from zero values, so without
// this a key written as 0 could not be told from one left out.
type presetter interface{ presetDefaults() }

func (d *decoder) fail(p keyPath, format string, args ...any) error {
	return &Error{
		File: d.file,
		Line: d.pos.line(p),
		Msg:  d.prefix + fmt.Sprintf(format, args...),
		path: p,
	}
}

// name is how a key is printed in messages.
func (d *decoder) name(p keyPath) string {
	if d.base <= len(p) {
		return p[d.base:].dotted()
	}
	return p.dotted()
}

func (d *decoder) decode(data any, rv reflect.Value, p keyPath) error {
	t := rv.Type()
	switch {
	case t == durationType:
		return d.duration(data, rv, p)
	case t == timeType:
		tv, ok := data.(time.Time)
		if !ok {
			return d.wrongType(p, "datetime", data)
		}
		rv.Set(reflect.ValueOf(tv))
		return nil
	case t.Kind() == reflect.Pointer:
		if rv.IsNil() {
			rv.Set(reflect.New(t.Elem()))
		}
		return d.decode(data, rv.Elem(), p)
	case reflect.PointerTo(t).Implements(textUnmarshalerType) && rv.CanAddr():
		s, ok := data.(string)
		if !ok {
			return d.wrongType(p, "string", data)
		}
		if err := rv.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			return d.fail(p, "invalid value for %q: %v", d.name(p), err)
		}
		return nil
	}

	switch t.Kind() {
	case reflect.Struct:
		m, ok := data.(map[string]any)
		if !ok {
			return d.wrongType(p, "table", data)
		}
		if rv.CanAddr() {
			if pd, ok := rv.Addr().Interface().(presetter); ok {
				pd.presetDefaults()
			}
		}
		return d.structFields(m, rv, p)
	case reflect.Map:
		return d.mapping(data, rv, p)
	case reflect.Slice:
		return d.slice(data, rv, p)
	case reflect.Interface:
		if t.NumMethod() != 0 {
			return d.fail(p, "cannot decode %q into %s", d.name(p), t)
		}
		rv.Set(reflect.ValueOf(data))
		return nil
	case reflect.String:
		s, ok := data.(string)
		if !ok {
			return d.wrongType(p, "string", data)
		}
		rv.SetString(s)
		return nil
	case reflect.Bool:
		b, ok := data.(bool)
		if !ok {
			return d.wrongType(p, "boolean", data)
		}
		rv.SetBool(b)
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := data.(int64)
		if !ok {
			return d.wrongType(p, "integer", data)
		}
		if rv.OverflowInt(n) {
			return d.fail(p, "value %d of %q is out of range for %s", n, d.name(p), t.Kind())
		}
		rv.SetInt(n)
		return nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := data.(int64)
		if !ok {
			return d.wrongType(p, "integer", data)
		}
		if n < 0 || rv.OverflowUint(uint64(n)) {
			return d.fail(p, "value %d of %q is out of range for %s", n, d.name(p), t.Kind())
		}
		rv.SetUint(uint64(n))
		return nil
	case reflect.Float32, reflect.Float64:
		switch v := data.(type) {
		case float64:
			rv.SetFloat(v)
		case int64:
			rv.SetFloat(float64(v))
		default:
			return d.wrongType(p, "float", data)
		}
		return nil
	}
	return d.fail(p, "cannot decode %q into unsupported type %s", d.name(p), t)
}

func (d *decoder) duration(data any, rv reflect.Value, p keyPath) error {
	s, ok := data.(string)
	if !ok {
		return d.fail(p, "wrong type for %q: expected a duration string such as \"90s\", got %s", d.name(p), describe(data))
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return d.fail(p, "invalid duration %q for %q (use e.g. \"500ms\", \"90s\", \"15m\")", s, d.name(p))
	}
	rv.SetInt(int64(v))
	return nil
}

func (d *decoder) wrongType(p keyPath, want string, data any) error {
	return d.fail(p, "wrong type for %q: expected %s, got %s", d.name(p), want, describe(data))
}

// describe names the TOML type of a parsed value, with the value itself when
// short, so the user sees what was written.
func describe(v any) string {
	switch x := v.(type) {
	case string:
		if i := strings.Index(x, "://"); i >= 0 && strings.Contains(x[i:], "@") {
			// Likely a URL with credentials (a proxy): never echo them.
			x = x[:i+3] + "***" + x[i+3+strings.LastIndex(x[i+3:], "@"):]
		}
		if len(x) > 40 {
			x = x[:40] + "..."
		}
		return fmt.Sprintf("string %q", x)
	case int64:
		return fmt.Sprintf("integer %d", x)
	case float64:
		return fmt.Sprintf("float %v", x)
	case bool:
		return fmt.Sprintf("boolean %v", x)
	case time.Time:
		return "datetime"
	case []map[string]any:
		return "array of tables"
	case []any:
		return "array"
	case map[string]any:
		return "table"
	case nil:
		return "nothing"
	}
	return fmt.Sprintf("%T", v)
}

func (d *decoder) mapping(data any, rv reflect.Value, p keyPath) error {
	t := rv.Type()
	if t.Key().Kind() != reflect.String {
		return d.fail(p, "cannot decode %q into %s (keys must be strings)", d.name(p), t)
	}
	m, ok := data.(map[string]any)
	if !ok {
		return d.wrongType(p, "table", data)
	}
	if rv.IsNil() {
		rv.Set(reflect.MakeMapWithSize(t, len(m)))
	}
	for _, k := range d.ordered(m, p) {
		ev := reflect.New(t.Elem()).Elem()
		if err := d.decode(m[k], ev, p.child(k)); err != nil {
			return err
		}
		rv.SetMapIndex(reflect.ValueOf(k).Convert(t.Key()), ev)
	}
	return nil
}

func (d *decoder) slice(data any, rv reflect.Value, p keyPath) error {
	var items []any
	switch v := data.(type) {
	case []any:
		items = v
	case []map[string]any:
		items = make([]any, len(v))
		for i := range v {
			items[i] = v[i]
		}
	default:
		return d.wrongType(p, "array", data)
	}
	out := reflect.MakeSlice(rv.Type(), len(items), len(items))
	for i, it := range items {
		if err := d.decode(it, out.Index(i), p.elem(i)); err != nil {
			return err
		}
	}
	rv.Set(out)
	return nil
}

// field is a settable struct field reached by an exact key.
type field struct {
	index []int
}

// fieldsOf lists the keys a struct type accepts: the `toml` tag name, or the
// Go field name when untagged; embedded structs without a tag are flattened.
func fieldsOf(t reflect.Type) map[string]field {
	out := map[string]field{}
	var walk func(t reflect.Type, index []int)
	walk = func(t reflect.Type, index []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag, hasTag := f.Tag.Lookup("toml")
			name, _, _ := strings.Cut(tag, ",")
			if name == "-" {
				continue
			}
			idx := append(append([]int(nil), index...), i)
			if f.Anonymous && !hasTag {
				ft := f.Type
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft.Kind() == reflect.Struct {
					walk(ft, idx)
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if _, dup := out[name]; !dup {
				out[name] = field{index: idx}
			}
		}
	}
	walk(t, nil)
	return out
}

func (d *decoder) structFields(m map[string]any, rv reflect.Value, p keyPath) error {
	fields := fieldsOf(rv.Type())
	for _, k := range d.ordered(m, p) {
		f, ok := fields[k]
		if !ok {
			return d.unknown(p.child(k), fields)
		}
		fv, err := fieldByIndex(rv, f.index)
		if err != nil {
			return d.fail(p.child(k), "%v", err)
		}
		if err := d.decode(m[k], fv, p.child(k)); err != nil {
			return err
		}
	}
	return nil
}

func fieldByIndex(v reflect.Value, index []int) (reflect.Value, error) {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				if !v.CanSet() {
					return v, fmt.Errorf("cannot set embedded pointer %s", v.Type())
				}
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v, nil
}

func (d *decoder) unknown(p keyPath, fields map[string]field) error {
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	msg := fmt.Sprintf("unknown key %q", d.name(p))
	if s := suggest(p[len(p)-1].name, names); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	return d.fail(p, "%s", msg)
}

// ordered returns the keys of m in the order they appear in the file, so the
// error reported is the first one a reader would meet.
func (d *decoder) ordered(m map[string]any, p keyPath) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		li, lj := d.pos.line(p.child(keys[i])), d.pos.line(p.child(keys[j]))
		if li != lj {
			return li < lj
		}
		return keys[i] < keys[j]
	})
	return keys
}

// suggest finds the accepted key closest to a misspelt one: an exact match
// ignoring case (the case trap), else one within two edits.
func suggest(key string, names []string) string {
	best, bestDist := "", 3
	sort.Strings(names)
	for _, n := range names {
		if strings.EqualFold(n, key) {
			return n
		}
		if dist := editDistance(key, n); dist < bestDist {
			best, bestDist = n, dist
		}
	}
	return best
}

func editDistance(a, b string) int {
	// Optimal string alignment: Levenshtein plus adjacent transpositions, so
	// "hots" is one edit from "host".
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
