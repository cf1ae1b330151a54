// Package workername is the "worker-name" plugin: it decides the worker name
// the agent registers at the pool for each miner. It replaces the legacy
// options fixed_worker_name, use_ip_as_worker_name and ip_worker_name_format
// (config/legacy.go converts them to this plugin) and adds regex rules.
//
//	[[plugins]]
//	name = "worker-name"
//	mode = "ip"                    # "fixed" | "ip" | "rules"
//	ip_format = "{1}x{2}x{3}x{4}"  # IPv4 peers: {1}..{4} are the octets
//	ip6_format = "{1}x{2}x{3}x{4}x{5}x{6}x{7}x{8}"  # IPv6 peers: the 8 groups in base 16
//
// The pool shows "<pool user>.<worker>"; whatever this plugin produces still
// goes through the core's filter (the characters sserver accepts) and length
// cut, and an empty name becomes "__default__".
package workername

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/plugins"
)

// Name is the plugin's registry name.
const Name = "worker-name"

// Modes.
const (
	ModeFixed = "fixed"
	ModeIP    = "ip"
	ModeRules = "rules"
)

// Default formats. The IPv4 one is the legacy agents' default; the IPv6 one
// keeps all eight groups, because the first four are only the network prefix
// and would give every miner of a site the same name.
const (
	DefaultIPFormat  = "{1}x{2}x{3}x{4}"
	DefaultIP6Format = "{1}x{2}x{3}x{4}x{5}x{6}x{7}x{8}"
)

func init() {
	plugins.Register(plugins.Info{
		Name:        Name,
		Description: "sets the worker name registered at the pool: fixed, from the miner's IP, or by regex rules",
		New:         func() plugins.Plugin { return new(WorkerName) },
	})
}

// WorkerName is the plugin and its options.
type WorkerName struct {
	Mode      string `toml:"mode"`       // "fixed", "ip" or "rules"
	FixedName string `toml:"fixed_name"` // mode fixed: every miner registers with this name
	IPFormat  string `toml:"ip_format"`  // mode ip, IPv4 peers
	IP6Format string `toml:"ip6_format"` // mode ip, IPv6 peers
	Rules     []Rule `toml:"rules"`      // mode rules: applied in order

	ip4, ip6 template
	rules    []*regexp.Regexp
}

// Rule rewrites the worker name: every match of the regular expression
// (RE2 syntax) is replaced by Replace, where $1 or ${name} refer to groups.
type Rule struct {
	Match   string `toml:"match"`
	Replace string `toml:"replace"`
}

var (
	_ plugins.Provisioner   = (*WorkerName)(nil)
	_ plugins.AuthorizeHook = (*WorkerName)(nil)
)

// PluginName implements plugins.Plugin.
func (*WorkerName) PluginName() string { return Name }

// Provision checks the options for the chosen mode and compiles them; keys
// that the mode would ignore are refused so a typo in mode is not silent.
func (w *WorkerName) Provision(env plugins.Env) error {
	unused := func(key string, set bool) error {
		if set {
			return fmt.Errorf("%s is not used with mode = %q", key, w.Mode)
		}
		return nil
	}
	switch w.Mode {
	case ModeFixed:
		if w.FixedName == "" {
			return fmt.Errorf("mode = %q needs fixed_name", ModeFixed)
		}
		if codec.FilterName(w.FixedName) == "" {
			return fmt.Errorf("fixed_name %q has no character the pool accepts (A-Z a-z 0-9 - . _ : | ^ /)", w.FixedName)
		}
		if codec.FilterName(w.FixedName) != w.FixedName && env.Log != nil {
			env.Log.Warnf("fixed_name %q will be registered as %q: the pool removes the other characters", w.FixedName, codec.FilterName(w.FixedName))
		}
		return firstErr(unused("ip_format", w.IPFormat != ""), unused("ip6_format", w.IP6Format != ""), unused("rules", len(w.Rules) > 0))
	case ModeIP:
		if w.IPFormat == "" {
			w.IPFormat = DefaultIPFormat
		}
		if w.IP6Format == "" {
			w.IP6Format = DefaultIP6Format
		}
		w.ip4, w.ip6 = parseTemplate(w.IPFormat), parseTemplate(w.IP6Format)
		// A format without a placeholder names every miner alike. Legacy
		// configs could say that, so it is allowed, but it is worth a word.
		for _, f := range []struct {
			key string
			t   template
		}{{"ip_format", w.ip4}, {"ip6_format", w.ip6}} {
			if !f.t.hasPlaceholder() && env.Log != nil {
				env.Log.Warnf("%s has no placeholder {1}..{8}: every miner gets the same name (mode = %q says that more clearly)", f.key, ModeFixed)
			}
		}
		return firstErr(unused("fixed_name", w.FixedName != ""), unused("rules", len(w.Rules) > 0))
	case ModeRules:
		if len(w.Rules) == 0 {
			return fmt.Errorf("mode = %q needs at least one [[plugins.rules]] entry", ModeRules)
		}
		for i, r := range w.Rules {
			if r.Match == "" {
				return fmt.Errorf("rules[%d]: match is empty", i)
			}
			re, err := regexp.Compile(r.Match)
			if err != nil {
				return fmt.Errorf("rules[%d]: match: %w", i, err)
			}
			w.rules = append(w.rules, re)
		}
		return firstErr(unused("fixed_name", w.FixedName != ""), unused("ip_format", w.IPFormat != ""), unused("ip6_format", w.IP6Format != ""))
	case "":
		return fmt.Errorf("mode is required: %q, %q or %q", ModeFixed, ModeIP, ModeRules)
	}
	return fmt.Errorf("unknown mode %q: want %q, %q or %q", w.Mode, ModeFixed, ModeIP, ModeRules)
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// OnAuthorize rewrites Info.Worker. It never refuses a miner.
func (w *WorkerName) OnAuthorize(m *msg.MinerAuthorizing) msg.Verdict {
	switch w.Mode {
	case ModeFixed:
		m.Info.Worker = w.FixedName
	case ModeIP:
		m.Info.Worker = w.ipName(m.Info.Remote.Addr())
	case ModeRules:
		name := m.Info.Worker
		for i, re := range w.rules {
			name = re.ReplaceAllString(name, w.Rules[i].Replace)
		}
		m.Info.Worker = name
	}
	return msg.Continue
}

// ipName renders the peer address. An IPv4 peer on a dual-stack socket
// arrives as ::ffff:a.b.c.d and is named as IPv4.
func (w *WorkerName) ipName(a netip.Addr) string {
	a = a.Unmap()
	var parts [8]string
	switch {
	case a.Is4():
		b := a.As4()
		for i := range b {
			parts[i] = strconv.Itoa(int(b[i]))
		}
		return w.ip4.render(&parts)
	case a.Is6():
		b := a.As16()
		for i := range parts {
			parts[i] = strconv.FormatUint(uint64(b[2*i])<<8|uint64(b[2*i+1]), 16)
		}
		return w.ip6.render(&parts)
	}
	return "" // no address (tests): the core registers __default__
}

// template is a format split into literal text and placeholders {1}..{8}.
type template []segment

type segment struct {
	lit string
	idx int // 1..8, or 0 for literal text
}

// parseTemplate accepts {1}..{8}; any other brace text is literal.
func parseTemplate(f string) template {
	var t template
	for len(f) > 0 {
		i := strings.IndexByte(f, '{')
		if i < 0 || i+2 >= len(f) || f[i+2] != '}' || f[i+1] < '1' || f[i+1] > '8' {
			if i < 0 {
				t = append(t, segment{lit: f})
				break
			}
			t = append(t, segment{lit: f[:i+1]})
			f = f[i+1:]
			continue
		}
		if i > 0 {
			t = append(t, segment{lit: f[:i]})
		}
		t = append(t, segment{idx: int(f[i+1] - '0')})
		f = f[i+3:]
	}
	return t
}

func (t template) hasPlaceholder() bool {
	for _, s := range t {
		if s.idx != 0 {
			return true
		}
	}
	return false
}

// render fills the placeholders; those past the address' parts ({5}..{8}
// for IPv4) render empty.
func (t template) render(parts *[8]string) string {
	var b strings.Builder
	for _, s := range t {
		if s.idx == 0 {
			b.WriteString(s.lit)
		} else {
			b.WriteString(parts[s.idx-1])
		}
	}
	return b.String()
}
