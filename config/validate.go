package config

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/btcagent/btcagent/codec/sv2/noise"
	"github.com/btcagent/btcagent/internal/proxydial"
)

var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"text", "json"}
	policies   = []string{OutageDisconnect, OutageWait, OutageFake}

	agentPrefix = "btccom-agent/"
)

func top(name string) keyPath { return keyPath{{name: name, index: -1}} }

// Validate checks the settings' values and their relations. It returns the
// first problem found, as an *Error with a one-line message; fields that
// ApplyDefaults fills (listener address/name/connections, pool protocol) may
// be left empty.
func (c *Config) Validate() error {
	err := c.validate()
	if err != nil && c.Path != "" {
		err.File = c.Path
	}
	if err != nil {
		return err
	}
	return nil
}

func (c *Config) validate() *Error {
	checks := []func() *Error{c.validateLogging, c.validateHTTP, c.validateUpstream, c.validateMiner, c.validateOutage, c.validateFarmWatch, c.validateListeners, c.validatePlugins}
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func oneOf(p keyPath, v string, allowed []string) *Error {
	if slices.Contains(allowed, v) {
		return nil
	}
	return errorAt(p, "%s %q is not one of %s", p.dotted(), v, strings.Join(allowed, ", "))
}

func intRange(p keyPath, v, lo, hi int) *Error {
	if v >= lo && v <= hi {
		return nil
	}
	return errorAt(p, "%s = %d is out of range %d..%d", p.dotted(), v, lo, hi)
}

func positive(p keyPath, v time.Duration) *Error {
	if v > 0 {
		return nil
	}
	return errorAt(p, "%s = %q must be positive", p.dotted(), formatDuration(v))
}

func (c *Config) validateLogging() *Error {
	if err := oneOf(top("log_level"), c.LogLevel, logLevels); err != nil {
		return err
	}
	if err := oneOf(top("log_format"), c.LogFormat, logFormats); err != nil {
		return err
	}
	if err := intRange(top("log_max_size_mb"), c.LogMaxSizeMB, 1, 1<<20); err != nil {
		return err
	}
	if err := intRange(top("log_max_files"), c.LogMaxFiles, 1, 1000); err != nil {
		return err
	}
	return nil
}

func (c *Config) validateUpstream() *Error {
	u := &c.Upstream
	p := top("upstream")
	if err := intRange(p.child("connections"), u.Connections, 1, 64); err != nil {
		return err
	}
	if u.FlushInterval < 0 || u.FlushInterval > time.Second {
		return errorAt(p.child("flush_interval"), "upstream.flush_interval = %q is out of range 0s..1s", formatDuration(u.FlushInterval))
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"dial_timeout", u.DialTimeout},
		{"handshake_timeout", u.HandshakeTimeout},
		{"dead_after", u.DeadAfter},
		{"reconnect_min", u.ReconnectMin},
		{"reconnect_max", u.ReconnectMax},
	} {
		if err := positive(p.child(d.key), d.v); err != nil {
			return err
		}
	}
	if u.FailbackInterval < 0 {
		return errorAt(p.child("failback_interval"), "upstream.failback_interval = %q must be 0 (off) or positive", formatDuration(u.FailbackInterval))
	}
	if u.ReconnectMin > u.ReconnectMax {
		return errorAt(p.child("reconnect_min"), "upstream.reconnect_min (%s) is greater than upstream.reconnect_max (%s)", formatDuration(u.ReconnectMin), formatDuration(u.ReconnectMax))
	}
	if !strings.HasPrefix(u.UserAgent, agentPrefix) || len(u.UserAgent) == len(agentPrefix) {
		return errorAt(p.child("user_agent"), "upstream.user_agent %q must start with %q and carry a version (pools recognise agents by this prefix)", u.UserAgent, agentPrefix)
	}
	if strings.ContainsFunc(u.UserAgent, isSpaceOrControl) {
		return errorAt(p.child("user_agent"), "upstream.user_agent %q must not contain spaces or control characters", u.UserAgent)
	}
	return validateProxies(u.Proxy, p.child("proxy"), "upstream.")
}

// validateProxies checks a proxy list; prefix goes before "proxy[i]" in
// messages. "system" is checked against the environment it will read.
func validateProxies(list []string, p keyPath, prefix string) *Error {
	seen := map[string]int{}
	for i, s := range list {
		ep := p.elem(i)
		if j, dup := seen[s]; dup {
			return errorAt(ep, "%sproxy[%d] repeats proxy[%d]", prefix, i, j)
		}
		seen[s] = i
		if s == proxydial.System {
			if env := proxydial.FromEnv(os.Getenv); env != "" {
				if _, err := proxydial.ParseURL(env); err != nil {
					return errorAt(ep, "%sproxy[%d] = \"system\": the environment's proxy: %v", prefix, i, err)
				}
			}
			continue
		}
		if _, err := proxydial.ParseURL(s); err != nil {
			return errorAt(ep, "%sproxy[%d]: %v", prefix, i, err)
		}
	}
	return nil
}

func (c *Config) validateMiner() *Error {
	m := &c.Miner
	p := top("miner")
	if err := intRange(p.child("max_line_bytes"), m.MaxLineBytes, 256, 1<<20); err != nil {
		return err
	}
	if err := intRange(p.child("write_buffer_bytes"), m.WriteBufferBytes, 1024, 64<<20); err != nil {
		return err
	}
	if err := positive(p.child("login_timeout"), m.LoginTimeout); err != nil {
		return err
	}
	if err := positive(p.child("idle_timeout"), m.IdleTimeout); err != nil {
		return err
	}
	return intRange(p.child("max_requests_per_second"), m.MaxRequestsPerSec, 1, 1_000_000)
}

func (c *Config) validateOutage() *Error {
	o := &c.Outage
	p := top("outage")
	if err := oneOf(p.child("policy"), o.Policy, policies); err != nil {
		return err
	}
	if err := positive(p.child("wait"), o.Wait); err != nil {
		return err
	}
	return positive(p.child("fake_job_interval"), o.FakeJobInterval)
}

func (c *Config) validateFarmWatch() *Error {
	f := &c.FarmWatch
	p := top("farm_watch")
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"expire", f.Expire}, {"offline_after", f.Grace}, {"idle_min", f.IdleMin}, {"slow_window", f.SlowWindow},
		{"hashrate_drop_window", f.HashrateDropWindow}, {"link_down_after", f.LinkDownAfter},
		{"sweep_interval", f.SweepInterval}, {"save_interval", f.SaveInterval},
	} {
		if err := positive(p.child(d.key), d.v); err != nil {
			return err
		}
	}
	if err := intRange(p.child("max_miners"), f.MaxMiners, 1, 10_000_000); err != nil {
		return err
	}
	for _, x := range []struct {
		key    string
		v      float64
		lo, hi float64
	}{
		{"idle_factor", f.IdleFactor, 1, 1e6}, {"slow_percent", f.SlowPercent, 0, 100}, {"hashrate_drop_percent", f.HashrateDropPercent, 0, 100},
	} {
		if !(x.v >= x.lo && x.v <= x.hi) {
			return errorAt(p.child(x.key), "%s = %g is out of range %g..%g", p.child(x.key).dotted(), x.v, x.lo, x.hi)
		}
	}
	if f.Expire < f.Grace {
		return errorAt(p.child("expire"), "%s must not be shorter than %s", p.child("expire").dotted(), p.child("offline_after").dotted())
	}
	return nil
}

func isSpaceOrControl(r rune) bool {
	return r <= ' ' || r == 0x7f
}

func (c *Config) validateListeners() *Error {
	if len(c.Listen) == 0 {
		return errorAt(nil, "no [[listen]] table: at least one listener is required")
	}
	ports := map[int]int{}
	names := map[string]int{}
	for i := range c.Listen {
		l := &c.Listen[i]
		p := top("listen").elem(i)
		label := p.indexed()
		if l.Port < 1 || l.Port > 65535 {
			return errorAt(p.child("port"), "%s: port %d is out of range 1..65535", label, l.Port)
		}
		label = fmt.Sprintf("%s (%s)", label, l.Key())
		if j, dup := ports[l.Port]; dup {
			return errorAt(p.child("port"), "%s: port %d is already used by listen[%d]", label, l.Port, j)
		}
		ports[l.Port] = i
		if l.Address != "" && net.ParseIP(l.Address) == nil {
			return errorAt(p.child("address"), "%s: address %q is not an IP address", label, l.Address)
		}
		if l.Name != "" {
			if j, dup := names[l.Name]; dup {
				return errorAt(p.child("name"), "%s: name %q is already used by listen[%d]", label, l.Name, j)
			}
			names[l.Name] = i
		}
		if l.PoolUser == "" && !l.MultiUser {
			return errorAt(p.child("pool_user"), "%s: pool_user is required and must not be empty", label)
		}
		if strings.ContainsFunc(l.PoolUser, isSpaceOrControl) {
			return errorAt(p.child("pool_user"), "%s: pool_user %q must not contain spaces or control characters", label, l.PoolUser)
		}
		if l.StratumWorker != "" && !isWorkerPart(l.StratumWorker) {
			return errorAt(p.child("stratum_worker"), "%s: stratum_worker %q may only contain letters, digits, \"_\" and \"-\"", label, l.StratumWorker)
		}
		if l.Connections != 0 {
			if l.Connections < 1 || l.Connections > 64 {
				return errorAt(p.child("connections"), "%s: connections = %d is out of range 1..64", label, l.Connections)
			}
		}
		if len(l.Pools) == 0 {
			return errorAt(p, "%s: no [[listen.pool]]: at least one pool is required", label)
		}
		for j := range l.Pools {
			if err := validatePool(&l.Pools[j], p.child("pool").elem(j)); err != nil {
				return err
			}
		}
		if err := validateMultiUser(l, p, label); err != nil {
			return err
		}
	}
	return nil
}

func validatePool(pool *Pool, p keyPath) *Error {
	label := p.indexed()
	if pool.Host == "" {
		return errorAt(p.child("host"), "%s: host is required and must not be empty", label)
	}
	if strings.ContainsFunc(pool.Host, isSpaceOrControl) {
		return errorAt(p.child("host"), "%s: host %q must not contain spaces", label, pool.Host)
	}
	if strings.Contains(pool.Host, ":") && net.ParseIP(pool.Host) == nil {
		return errorAt(p.child("host"), "%s: host %q must not include a port; use port = ...", label, pool.Host)
	}
	if pool.Port < 1 || pool.Port > 65535 {
		return errorAt(p.child("port"), "%s: port %d is out of range 1..65535", label, pool.Port)
	}
	if pool.Protocol != "" && !KnownProtocol(pool.Protocol) {
		return errorAt(p.child("protocol"), "%s: protocol %q is not one of %s", label, pool.Protocol, strings.Join(Protocols(), ", "))
	}
	if err := validateSV2(pool, p, label); err != nil {
		return err
	}
	if pool.TLSSkipVerify && !pool.TLS {
		return errorAt(p.child("tls_skip_verify"), "%s: tls_skip_verify has no effect without tls = true", label)
	}
	if strings.ContainsFunc(pool.User, isSpaceOrControl) {
		return errorAt(p.child("user"), "%s: user %q must not contain spaces or control characters", label, pool.User)
	}
	if err := validateProxies(pool.Proxy, p.child("proxy"), label+": "); err != nil {
		return err
	}
	if pool.Proxy != nil && len(pool.Proxy) == 0 {
		for _, b := range []struct {
			key string
			v   *bool
		}{{"proxy_race_direct", pool.ProxyRaceDirect}, {"proxy_fallback_direct", pool.ProxyFallbackDirect}} {
			if b.v != nil {
				return errorAt(p.child(b.key), "%s: %s has no effect with proxy = [] (this pool is dialed directly)", label, b.key)
			}
		}
	}
	return nil
}

// validateSV2 checks the keys of Stratum V2 pools: the pool must be
// authenticated by its authority key unless trust on first use is asked for
// explicitly, and the SV2 keys mean nothing on other protocols.
func validateSV2(pool *Pool, p keyPath, label string) *Error {
	if !pool.IsSV2() {
		switch {
		case pool.AuthorityPubkey != "":
			return errorAt(p.child("authority_pubkey"), "%s: authority_pubkey is only used with protocol %q or %q", label, ProtocolSV2, ProtocolSV2PerMiner)
		case pool.SV2TOFU:
			return errorAt(p.child("sv2_tofu"), "%s: sv2_tofu is only used with protocol %q or %q", label, ProtocolSV2, ProtocolSV2PerMiner)
		}
		return nil
	}
	switch {
	case pool.AuthorityPubkey == "" && !pool.SV2TOFU:
		return errorAt(p.child("protocol"), "%s: protocol %q needs the pool's authority_pubkey (or sv2_tofu = true to accept the pool's key unverified)", label, pool.Protocol)
	case pool.AuthorityPubkey != "" && pool.SV2TOFU:
		return errorAt(p.child("sv2_tofu"), "%s: sv2_tofu = true would ignore authority_pubkey; keep one of them", label)
	case pool.TLS:
		return errorAt(p.child("tls"), "%s: tls = true with protocol %q: SV2 links are encrypted by their own Noise handshake", label, pool.Protocol)
	}
	if pool.AuthorityPubkey != "" {
		if _, err := noise.ParseAuthorityKey(pool.AuthorityPubkey); err != nil {
			return errorAt(p.child("authority_pubkey"), "%s: %s", label, strings.Replace(err.Error(), "sv2 noise: authority key ", "authority_pubkey ", 1))
		}
	}
	return nil
}

func (c *Config) validatePlugins() *Error {
	for i := range c.Plugins {
		s := &c.Plugins[i]
		p := top("plugins").elem(i)
		if s.Name == "" {
			return errorAt(p, "plugins[%d]: missing required key \"name\"", i)
		}
		seen := map[int]bool{}
		for _, port := range s.Listen {
			if seen[port] {
				return errorAt(p.child("listen"), "%sport %d is listed twice in listen", s.label(), port)
			}
			seen[port] = true
			if !slices.ContainsFunc(c.Listen, func(l Listener) bool { return l.Port == port }) {
				return errorAt(p.child("listen"), "%slisten port %d matches no [[listen]] table", s.label(), port)
			}
		}
		if err := c.refuseOnMultiUser(s, p); err != nil {
			return err
		}
	}
	return nil
}

// isWorkerPart reports whether s is accepted by every pool after the dot of
// "<user>.<worker>".
func isWorkerPart(s string) bool {
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}
