package config

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"time"
)

// PluginSpec is one [[plugins]] table. The keys name, listen and required
// belong to the agent; every other key of the table is the plugin's own
// option and is decoded by the plugin through Decode, so that the config
// package needs no knowledge of plugin types and still refuses typos.
type PluginSpec struct {
	Name     string // registry name of the plugin (`name`, required)
	Listen   []int  // ports it applies to (`listen = [3333]`); empty = all listeners
	Required bool   // `required = true`: failing to start it stops the agent
	Index    int    // position among the [[plugins]] tables, 0-based
	Line     int    // line of the table header; 0 if unknown

	opts    map[string]any // the plugin's own keys, as parsed
	file    string
	pos     positions
	decoded bool
}

// NewPluginSpec builds a spec in code (tests, legacy conversion). Option
// values may be plain Go values (int, []string, map[string]int, ...); they are
// normalised to what the TOML parser would have produced.
func NewPluginSpec(name string, options map[string]any) PluginSpec {
	opts := make(map[string]any, len(options))
	for k, v := range options {
		opts[k] = normalise(v)
	}
	return PluginSpec{Name: name, opts: opts}
}

// AppliesTo reports whether the plugin runs for the listener on port.
func (s *PluginSpec) AppliesTo(port int) bool {
	return len(s.Listen) == 0 || slices.Contains(s.Listen, port)
}

// Options returns a copy of the plugin's own keys as parsed (strings, int64,
// float64, bool, time.Time, []any, map[string]any).
func (s *PluginSpec) Options() map[string]any {
	out, _ := deepCopy(s.opts).(map[string]any)
	if out == nil {
		out = map[string]any{}
	}
	return out
}

func (s *PluginSpec) label() string {
	return fmt.Sprintf("plugins[%d] (%s): ", s.Index, s.Name)
}

func (s *PluginSpec) path() keyPath {
	return keyPath{{name: "plugins", index: s.Index}}
}

// Decode decodes the plugin's own keys strictly into v, a pointer to the
// plugin's option struct (fields matched by their `toml` tag, exactly).
// Unknown keys, wrong types and keys whose case differs from the tag are
// errors naming file, line, plugin and key, e.g.
//
//	config.toml:31: plugins[1] (worker-name): unknown key "fixd_name"
//
// A plugin without options calls Decode(nil); any key is then an error.
func (s *PluginSpec) Decode(v any) error {
	s.decoded = true
	d := &decoder{file: s.file, pos: s.pos, prefix: s.label(), base: 1}
	if v == nil {
		keys := d.ordered(s.opts, s.path())
		if len(keys) > 0 {
			return d.fail(s.path().child(keys[0]), "unknown key %q (the plugin takes no options)", keys[0])
		}
		return nil
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("config: %sDecode needs a non-nil pointer, got %T", s.label(), v)
	}
	return d.decode(deepCopy(s.opts), rv.Elem(), s.path())
}

// CheckDecoded reports an error if the spec has option keys but Decode was
// never called, so a plugin that forgets to decode cannot let unknown keys
// slip through unnoticed.
func (s *PluginSpec) CheckDecoded() error {
	if s.decoded || len(s.opts) == 0 {
		return nil
	}
	d := &decoder{file: s.file, pos: s.pos, prefix: s.label()}
	keys := d.ordered(s.opts, s.path())
	return d.fail(s.path(), "options %q were never decoded by the plugin", keys)
}

// deepCopy copies the maps and slices of a parsed tree so callers cannot
// alter the spec through what they were given.
func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = deepCopy(e)
		}
		return out
	case []map[string]any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopy(e)
		}
		return out
	}
	return v
}

// normalise turns Go values into the types the TOML parser produces.
func normalise(v any) any {
	switch x := v.(type) {
	case nil, string, bool, int64, float64, time.Time:
		return v
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalise(e)
		}
		return out
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return int64(rv.Uint())
	case reflect.Float32, reflect.Float64:
		return rv.Float()
	case reflect.String:
		return rv.String()
	case reflect.Bool:
		return rv.Bool()
	case reflect.Slice, reflect.Array:
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = normalise(rv.Index(i).Interface())
		}
		return out
	case reflect.Map:
		if rv.Type().Key().Kind() == reflect.String {
			out := make(map[string]any, rv.Len())
			for _, k := range rv.MapKeys() {
				out[k.String()] = normalise(rv.MapIndex(k).Interface())
			}
			return out
		}
	}
	return v
}

// pluginMeta holds the keys of a [[plugins]] table that the agent owns.
type pluginMeta struct {
	Name     string `toml:"name"`
	Listen   []int  `toml:"listen"`
	Required bool   `toml:"required"`
}

var pluginMetaKeys = []string{"name", "listen", "required"}

// parsePlugins turns the raw `plugins` value into specs.
func parsePlugins(raw any, file string, pos positions) ([]PluginSpec, error) {
	d := &decoder{file: file, pos: pos}
	p := keyPath{{name: "plugins", index: -1}}
	var tables []map[string]any
	switch v := raw.(type) {
	case []map[string]any:
		tables = v
	case []any:
		for i, e := range v {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, d.fail(p.elem(i), "plugins[%d] must be a table, got %s", i, describe(e))
			}
			tables = append(tables, m)
		}
	default:
		return nil, d.fail(p, "\"plugins\" must be an array of tables ([[plugins]]), got %s", describe(raw))
	}
	specs := make([]PluginSpec, 0, len(tables))
	for i, t := range tables {
		tp := p.elem(i)
		metaRaw := map[string]any{}
		opts := map[string]any{}
		for k, v := range t {
			if slices.Contains(pluginMetaKeys, k) {
				metaRaw[k] = v
			} else {
				opts[k] = v
			}
		}
		d.prefix = fmt.Sprintf("plugins[%d]: ", i)
		d.base = 1
		var meta pluginMeta
		if err := d.decode(metaRaw, reflect.ValueOf(&meta).Elem(), tp); err != nil {
			return nil, err
		}
		if meta.Name == "" {
			return nil, d.fail(tp, "missing required key \"name\"")
		}
		specs = append(specs, PluginSpec{
			Name:     meta.Name,
			Listen:   meta.Listen,
			Required: meta.Required,
			Index:    i,
			Line:     pos.line(tp),
			opts:     opts,
			file:     file,
			pos:      pos,
		})
	}
	return specs, nil
}

// optionKeys lists the option keys, sorted (for messages and encoding).
func (s *PluginSpec) optionKeys() []string {
	return slices.Sorted(maps.Keys(s.opts))
}
