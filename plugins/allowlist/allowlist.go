// Package allowlist is the "allow-list" plugin: it refuses miners whose
// address or worker name is not on a list, before they cost the pool
// anything. An address outside `cidrs` is refused at connect (the miner gets
// a Stratum error 28 naming its address, then the connection is closed); a
// name matching none of `workers` is refused at authorize with error 24.
//
//	[[plugins]]
//	name = "allow-list"
//	cidrs = ["10.0.0.0/8", "192.168.1.23"]   # bare addresses mean one host
//	workers = ['^farm1\.', '^rack7-']          # RE2; one match is enough
//	match = "user"                             # "user" (as sent, default) or "worker"
//
// An empty list allows everything for its check; at least one list is needed.
package allowlist

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/plugins"
)

// Name is the plugin's registry name.
const Name = "allow-list"

// Values of the match option.
const (
	MatchUser   = "user"   // the name in mining.authorize, as the miner sent it
	MatchWorker = "worker" // the worker name after earlier plugins (what the pool will show)
)

func init() {
	plugins.Register(plugins.Info{
		Name:        Name,
		Description: "refuses miners whose address (CIDR list) or worker name (regex list) is not allowed",
		New:         func() plugins.Plugin { return new(AllowList) },
	})
}

// AllowList is the plugin and its options.
type AllowList struct {
	CIDRs   []string `toml:"cidrs"`
	Workers []string `toml:"workers"`
	Match   string   `toml:"match"`

	prefixes []netip.Prefix
	names    []*regexp.Regexp
}

var (
	_ plugins.Provisioner   = (*AllowList)(nil)
	_ plugins.ConnectHook   = (*AllowList)(nil)
	_ plugins.AuthorizeHook = (*AllowList)(nil)
)

// PluginName implements plugins.Plugin.
func (*AllowList) PluginName() string { return Name }

// Provision parses the lists.
func (a *AllowList) Provision(plugins.Env) error {
	if len(a.CIDRs) == 0 && len(a.Workers) == 0 {
		return fmt.Errorf("needs cidrs or workers (an empty allow list would allow every miner)")
	}
	switch a.Match {
	case "":
		a.Match = MatchUser
	case MatchUser, MatchWorker:
	default:
		return fmt.Errorf("match = %q: want %q or %q", a.Match, MatchUser, MatchWorker)
	}
	var err error
	if a.prefixes, err = ParsePrefixes(a.CIDRs); err != nil {
		return fmt.Errorf("cidrs: %w", err)
	}
	for i, w := range a.Workers {
		re, err := regexp.Compile(w)
		if err != nil {
			return fmt.Errorf("workers[%d]: %w", i, err)
		}
		a.names = append(a.names, re)
	}
	return nil
}

// ParsePrefixes reads CIDRs; a bare address is a one-host prefix. IPv4-mapped
// IPv6 prefixes are refused because peers are matched unmapped.
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for i, s := range list {
		s = strings.TrimSpace(s)
		var p netip.Prefix
		var err error
		if strings.Contains(s, "/") {
			p, err = netip.ParsePrefix(s)
		} else {
			var a netip.Addr
			if a, err = netip.ParseAddr(s); err == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil {
			return nil, fmt.Errorf("[%d] %q: %w", i, s, err)
		}
		if p.Addr().Is4In6() {
			return nil, fmt.Errorf("[%d] %q: write IPv4 networks as IPv4", i, s)
		}
		if p.Masked() != p {
			return nil, fmt.Errorf("[%d] %q has host bits set (did you mean %s?)", i, s, p.Masked())
		}
		out = append(out, p)
	}
	return out, nil
}

// Contains reports whether any prefix holds addr (unmapped first, so an IPv4
// peer on a dual-stack socket matches IPv4 prefixes).
func Contains(prefixes []netip.Prefix, addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// OnConnect refuses addresses outside the list.
func (a *AllowList) OnConnect(m *msg.MinerConnecting) msg.Verdict {
	if len(a.prefixes) == 0 || Contains(a.prefixes, m.Remote.Addr()) {
		return msg.Continue
	}
	m.Text = fmt.Sprintf("address %s is not on this agent's allow list", m.Remote.Addr().Unmap())
	return msg.Reject
}

// OnAuthorize refuses names that match no pattern.
func (a *AllowList) OnAuthorize(m *msg.MinerAuthorizing) msg.Verdict {
	if len(a.names) == 0 {
		return msg.Continue
	}
	name := m.Info.User
	if a.Match == MatchWorker {
		name = m.Info.Worker
	}
	for _, re := range a.names {
		if re.MatchString(name) {
			return msg.Continue
		}
	}
	m.Code = codec.StatusUnauthorized
	m.Text = fmt.Sprintf("worker %q is not on this agent's allow list", name)
	return msg.Reject
}
