package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/BurntSushi/toml"
)

// Load reads the configuration file at path: TOML, or the legacy btcagent
// JSON when the name ends in ".json" (its conversion warnings are dropped;
// use LoadLegacyJSON to see them). It applies defaults and validates.
func Load(path string) (*Config, error) {
	if strings.EqualFold(filepath.Ext(path), ".json") {
		c, _, err := LoadLegacyJSON(path)
		return c, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(data, path)
	if err != nil {
		return nil, err
	}
	if err := c.setPath(path); err != nil {
		return nil, err
	}
	return c, nil
}

// setPath records where the config came from and anchors a relative log_dir
// there, so the agent logs to the same place whatever its working directory.
func (c *Config) setPath(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("config: %s: %w", path, err)
	}
	c.Path = abs
	if c.LogDir != "" && c.LogDir != "stderr" && !filepath.IsAbs(c.LogDir) {
		c.LogDir = filepath.Join(filepath.Dir(abs), c.LogDir)
	}
	if f := c.FarmWatch.StateFile; f != "" && !filepath.IsAbs(f) {
		c.FarmWatch.StateFile = filepath.Join(filepath.Dir(abs), f)
	}
	return nil
}

// Parse reads TOML configuration from memory; name is used in errors. It
// applies defaults and validates. Path is left empty and log_dir as written.
func Parse(data []byte, name string) (*Config, error) {
	var raw map[string]any
	if _, err := toml.NewDecoder(strings.NewReader(string(data))).Decode(&raw); err != nil {
		return nil, syntaxError(err, name)
	}
	pos := scanPositions(data)
	d := &decoder{file: name, pos: pos}

	c := Default()
	if pr, ok := raw["plugins"]; ok {
		specs, err := parsePlugins(pr, name, pos)
		if err != nil {
			return nil, err
		}
		c.Plugins = specs
		delete(raw, "plugins")
	}
	if err := d.decode(raw, reflect.ValueOf(c).Elem(), nil); err != nil {
		return nil, err
	}
	if err := checkRequired(raw, d); err != nil {
		return nil, err
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return nil, locate(err, name, pos)
	}
	return c, nil
}

func syntaxError(err error, name string) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &Error{File: name, Line: pe.Position.Line, Col: pe.Position.Col, Msg: "TOML syntax error: " + pe.Message}
	}
	return &Error{File: name, Msg: "TOML: " + err.Error()}
}

// checkRequired tells a missing key from one written as zero, which the
// decoded struct cannot: "missing required key" points the user at the table.
func checkRequired(raw map[string]any, d *decoder) error {
	lp := keyPath{{name: "listen", index: -1}}
	for i, l := range tables(raw["listen"]) {
		p := lp.elem(i)
		for _, k := range []string{"port", "pool_user"} {
			if multi, _ := l["multi_user"].(bool); multi && k == "pool_user" {
				continue // the miners' names choose the sub-account
			}
			if _, ok := l[k]; !ok {
				return d.fail(p, "%s: missing required key %q", p.indexed(), k)
			}
		}
		pools := tables(l["pool"])
		if len(pools) == 0 {
			return d.fail(p, "%s: no [[listen.pool]]: at least one pool is required", p.indexed())
		}
		for j, pool := range pools {
			pp := p.child("pool").elem(j)
			for _, k := range []string{"host", "port"} {
				if _, ok := pool[k]; !ok {
					return d.fail(pp, "%s: missing required key %q", pp.indexed(), k)
				}
			}
		}
	}
	return nil
}

// tables returns the tables of an array of tables (either spelling the
// parser produces); other values give nil.
func tables(v any) []map[string]any {
	switch x := v.(type) {
	case []map[string]any:
		return x
	case []any:
		var out []map[string]any
		for _, e := range x {
			if m, ok := e.(map[string]any); ok {
				out = append(out, m)
			}
		}
		return out
	}
	return nil
}
