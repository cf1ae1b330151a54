package config

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// WriteTOML writes c as a TOML document that Parse reads back to the same
// values. Settings equal to their defaults are left out, so the output shows
// only what differs from the documented example.
func (c *Config) WriteTOML(w io.Writer) error {
	bw := bufio.NewWriter(w)
	e := &encoder{w: bw}
	def := Default()

	e.fields("", reflect.ValueOf(c).Elem(), reflect.ValueOf(def).Elem())
	for _, sec := range []struct {
		name      string
		val, dflt any
	}{
		{"upstream", &c.Upstream, &def.Upstream},
		{"miner", &c.Miner, &def.Miner},
		{"outage", &c.Outage, &def.Outage},
		{"farm_watch", &c.FarmWatch, &def.FarmWatch},
	} {
		e.fields(sec.name, reflect.ValueOf(sec.val).Elem(), reflect.ValueOf(sec.dflt).Elem())
	}
	for i := range c.Listen {
		c.writeListener(e, &c.Listen[i])
	}
	for i := range c.Plugins {
		writePlugin(e, &c.Plugins[i])
	}
	if e.err != nil {
		return fmt.Errorf("config: encoding TOML: %w", e.err)
	}
	return bw.Flush()
}

type encoder struct {
	w       *bufio.Writer
	err     error
	started bool
}

func (e *encoder) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}

// table starts a table header, with a blank line before it.
func (e *encoder) table(header string) {
	if e.started {
		e.printf("\n")
	}
	e.printf("%s\n", header)
	e.started = true
}

func (e *encoder) kv(key string, v any) {
	s, err := tomlValue(v)
	if err != nil && e.err == nil {
		e.err = fmt.Errorf("%s: %w", key, err)
	}
	e.printf("%s = %s\n", quoteKey(key), s)
	e.started = true
}

// fields writes the scalar fields of a struct that differ from dflt; if
// section is set they go under a [section] header (only if any differ).
func (e *encoder) fields(section string, v, dflt reflect.Value) {
	t := v.Type()
	headed := section == ""
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" || name == "-" {
			continue
		}
		k := f.Type.Kind()
		if k == reflect.Struct || k == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct {
			continue // tables and arrays of tables are written by their own code
		}
		if reflect.DeepEqual(v.Field(i).Interface(), dflt.Field(i).Interface()) {
			continue
		}
		if k == reflect.Slice && v.Field(i).Len() == 0 && dflt.Field(i).Len() == 0 {
			continue // nil and empty are the same setting
		}
		if !headed {
			e.table("[" + section + "]")
			headed = true
		}
		e.kv(name, v.Field(i).Interface())
	}
}

func (c *Config) writeListener(e *encoder, l *Listener) {
	e.table("[[listen]]")
	if l.Name != "" && l.Name != l.Key() {
		e.kv("name", l.Name)
	}
	if l.Address != "" && l.Address != "0.0.0.0" {
		e.kv("address", l.Address)
	}
	e.kv("port", l.Port)
	if l.PoolUser != "" || !l.MultiUser {
		e.kv("pool_user", l.PoolUser)
	}
	if l.Connections != 0 && l.Connections != c.Upstream.Connections {
		e.kv("connections", l.Connections)
	}
	if l.StratumWorker != "" {
		e.kv("stratum_worker", l.StratumWorker)
	}
	if l.MultiUser {
		e.kv("multi_user", true)
		writeSubAccounts(e, l)
	}
	for i := range l.Pools {
		p := &l.Pools[i]
		e.table("[[listen.pool]]")
		e.kv("host", p.Host)
		e.kv("port", p.Port)
		if p.User != "" {
			e.kv("user", p.User)
		}
		if p.TLS {
			e.kv("tls", true)
		}
		if p.TLSSkipVerify {
			e.kv("tls_skip_verify", true)
		}
		if p.Protocol != "" && p.Protocol != ProtocolAgent {
			e.kv("protocol", p.Protocol)
		}
		if p.AuthorityPubkey != "" {
			e.kv("authority_pubkey", p.AuthorityPubkey)
		}
		if p.SV2TOFU {
			e.kv("sv2_tofu", true)
		}
		if p.Proxy != nil {
			e.kv("proxy", p.Proxy)
		}
		if p.ProxyRaceDirect != nil {
			e.kv("proxy_race_direct", *p.ProxyRaceDirect)
		}
		if p.ProxyFallbackDirect != nil {
			e.kv("proxy_fallback_direct", *p.ProxyFallbackDirect)
		}
	}
}

// writeSubAccounts writes the [listen.subaccounts] keys that differ from
// their defaults (connections: from the listener's), and no header if none.
func writeSubAccounts(e *encoder, l *Listener) {
	s, def := l.SubAccounts, DefaultSubAccounts()
	if s.Connections == l.Connections {
		s.Connections = 0
	}
	if len(s.Allow) == 0 {
		s.Allow = nil
	}
	e.fields("listen.subaccounts", reflect.ValueOf(&s).Elem(), reflect.ValueOf(&def).Elem())
}

func writePlugin(e *encoder, s *PluginSpec) {
	e.table("[[plugins]]")
	e.kv("name", s.Name)
	if len(s.Listen) > 0 {
		e.kv("listen", s.Listen)
	}
	if s.Required {
		e.kv("required", true)
	}
	for _, k := range s.optionKeys() {
		e.kv(k, s.opts[k])
	}
}

// tomlValue renders one value in TOML syntax; tables become inline tables.
func tomlValue(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return tomlString(x), nil
	case bool:
		return strconv.FormatBool(x), nil
	case time.Duration:
		return tomlString(formatDuration(x)), nil
	case time.Time:
		return x.Format(time.RFC3339Nano), nil
	case float64:
		return tomlFloat(x), nil
	case float32:
		return tomlFloat(float64(x)), nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			s, err := tomlValue(x[k])
			if err != nil {
				return "", err
			}
			parts = append(parts, quoteKey(k)+" = "+s)
		}
		if len(parts) == 0 {
			return "{}", nil
		}
		return "{ " + strings.Join(parts, ", ") + " }", nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(rv.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(rv.Uint(), 10), nil
	case reflect.Slice, reflect.Array:
		parts := make([]string, rv.Len())
		for i := range parts {
			s, err := tomlValue(rv.Index(i).Interface())
			if err != nil {
				return "", err
			}
			parts[i] = s
		}
		return "[" + strings.Join(parts, ", ") + "]", nil
	}
	return "", fmt.Errorf("cannot write %T as TOML", v)
}

// formatDuration prefers the unit a person would write ("60s", "15m") over
// time.Duration's "1m0s"; both parse the same.
func formatDuration(d time.Duration) string {
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}} {
		if d != 0 && d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.name
		}
	}
	return d.String()
}

func tomlFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eEn") {
		s += ".0" // without it TOML reads an integer
	}
	return s
}

// tomlString writes a TOML basic string. strconv.Quote is not used because
// its \x and \a escapes are not valid TOML.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == utf8.RuneError:
			b.WriteString(`\uFFFD`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
