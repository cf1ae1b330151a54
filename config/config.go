// Package config loads, checks and converts btcagent's configuration.
//
// The format is TOML (see config.toml at the top of the repository). Loading
// is strict: a key that is not spelt exactly as documented, a value of the
// wrong type, or a setting out of range stops the agent with a one-line error
// naming file, line and key, because a silently ignored typo in a mining
// farm's config costs hashrate. The legacy btccom btcagent JSON file
// (agent_conf.json) is still accepted and can be converted to TOML.
package config

import (
	"net"
	"strconv"
	"time"
)

// Config is the whole agent configuration.
type Config struct {
	LogLevel         string           `toml:"log_level"`            // debug|info|warn|error
	LogFormat        string           `toml:"log_format"`           // text|json
	LogDir           string           `toml:"log_dir"`              // "" or "stderr" = stderr; after Load, relative paths are made absolute against the config file's directory
	LogMaxSizeMB     int              `toml:"log_max_size_mb"`      // rotate the log file at this size
	LogMaxFiles      int              `toml:"log_max_files"`        // rotated files kept
	HTTPListen       string           `toml:"http_listen"`          // status/metrics/dashboard; "" disables
	HTTPToken        string           `toml:"http_token"`           // optional bearer token for the HTTP endpoints
	HTTPAllowedHosts []string         `toml:"http_allowed_hosts"`   // Host names the HTTP server answers to besides loopback and http_listen
	HTTPMaxConns     int              `toml:"http_max_connections"` // concurrent HTTP connections, 1..4096
	Upstream         UpstreamOptions  `toml:"upstream"`
	Miner            MinerOptions     `toml:"miner"`
	Outage           OutageOptions    `toml:"outage"`
	FarmWatch        FarmWatchOptions `toml:"farm_watch"`
	Listen           []Listener       `toml:"listen"`
	Plugins          []PluginSpec     `toml:"-"` // from the [[plugins]] tables, in file order
	Path             string           `toml:"-"` // absolute path of the file it was loaded from
}

// UpstreamOptions tune the links from the agent to the pools.
type UpstreamOptions struct {
	Connections      int           `toml:"connections"`                 // upstream links per listener, 1..64
	SubmitResponse   bool          `toml:"submit_response_from_server"` // negotiate "subres": miners see the pool's real verdicts
	FlushInterval    time.Duration `toml:"flush_interval"`              // share coalescing window, 0..1s (0 = write at once)
	DialTimeout      time.Duration `toml:"dial_timeout"`
	HandshakeTimeout time.Duration `toml:"handshake_timeout"` // from subscribe until the first job
	DeadAfter        time.Duration `toml:"dead_after"`        // time without a valid job after which a link is dropped
	ReconnectMin     time.Duration `toml:"reconnect_min"`     // first reconnect backoff
	ReconnectMax     time.Duration `toml:"reconnect_max"`     // backoff ceiling
	FailbackInterval time.Duration `toml:"failback_interval"` // how often a link on a backup pool tries the better ones; 0 = never
	UserAgent        string        `toml:"user_agent"`        // must start with "btccom-agent/": pools recognise agents by it
	// Proxy is the default proxy list of every pool: URLs (socks5://,
	// http://, https://, credentials allowed) or "system" for the
	// environment's ALL_PROXY/HTTPS_PROXY/HTTP_PROXY. Empty: direct.
	Proxy               []string `toml:"proxy"`
	ProxyRaceDirect     bool     `toml:"proxy_race_direct"`     // race a direct connection alongside the proxies
	ProxyFallbackDirect bool     `toml:"proxy_fallback_direct"` // dial directly once every proxy failed
}

// MinerOptions bound what one miner connection may cost.
type MinerOptions struct {
	MaxLineBytes      int           `toml:"max_line_bytes"`          // longest request line, 256..1 MiB
	WriteBufferBytes  int           `toml:"write_buffer_bytes"`      // bounded per-miner output queue
	LoginTimeout      time.Duration `toml:"login_timeout"`           // subscribe+authorize must finish within this
	IdleTimeout       time.Duration `toml:"idle_timeout"`            // no request from an authorized miner
	MaxRequestsPerSec int           `toml:"max_requests_per_second"` // per miner
}

// OutageOptions decide what miners experience when every pool is unreachable.
type OutageOptions struct {
	Policy          string        `toml:"policy"`            // "disconnect" | "wait" | "fake"
	Wait            time.Duration `toml:"wait"`              // for "wait": keep miners this long, then disconnect
	FakeJobInterval time.Duration `toml:"fake_job_interval"` // for "fake": how often a fake job is sent
}

// FarmWatchOptions tune the known-miners registry: how long miners are
// remembered, where the list is kept across restarts, and when a miner counts
// as offline, idle or slow. The alerts themselves are the farm-watch plugin's.
type FarmWatchOptions struct {
	StateFile           string        `toml:"state_file"`            // "" = not persisted; after Load, relative to the config file
	Expire              time.Duration `toml:"expire"`                // forget a miner not seen for this long
	MaxMiners           int           `toml:"max_miners"`            // cap of the list; the longest unseen are forgotten first
	Grace               time.Duration `toml:"offline_after"`         // gone this long = offline
	IdleFactor          float64       `toml:"idle_factor"`           // no share for this many expected share intervals = idle
	IdleMin             time.Duration `toml:"idle_min"`              // ... and never sooner than this
	SlowPercent         float64       `toml:"slow_percent"`          // below this % of its own average = slow
	SlowWindow          time.Duration `toml:"slow_window"`           // the average's time constant
	HashrateDropPercent float64       `toml:"hashrate_drop_percent"` // farm hashrate_drop event threshold; 0 = off
	HashrateDropWindow  time.Duration `toml:"hashrate_drop_window"`  // ... compared with the highest value in this window
	LinkDownAfter       time.Duration `toml:"link_down_after"`       // a pool link down this long = pool_link_down event
	SweepInterval       time.Duration `toml:"sweep_interval"`        // how often statuses are recomputed
	SaveInterval        time.Duration `toml:"save_interval"`         // how often the state file is rewritten
}

// Outage policies.
const (
	OutageDisconnect = "disconnect"
	OutageWait       = "wait"
	OutageFake       = "fake"
)

// Pool protocols.
const (
	ProtocolAgent           = "agent"             // BTCAgent binary protocol, all miners on few links
	ProtocolStratum         = "stratum"           // plain Stratum V1 proxy
	ProtocolStratumPerMiner = "stratum-per-miner" // one Stratum link per miner
	ProtocolSV2             = "sv2"               // Stratum V2, one extended channel for all the link's miners
	ProtocolSV2PerMiner     = "sv2-per-miner"     // Stratum V2, one channel per miner on the slot's connection
)

// DefaultUserAgent is sent in mining.subscribe. Pools treat a connection as
// an agent connection only if the string starts with "btccom-agent/".
const DefaultUserAgent = "btccom-agent/3.0.0-ga"

// Listener is one Stratum port for miners and the pools behind it.
type Listener struct {
	Name        string `toml:"name"`        // label in logs and metrics; default Key()
	Address     string `toml:"address"`     // IP to bind; default "0.0.0.0"
	Port        int    `toml:"port"`        // required, 1..65535, unique across listeners
	PoolUser    string `toml:"pool_user"`   // required unless MultiUser: the pool sub-account
	Connections int    `toml:"connections"` // upstream links; 0 in the file = Upstream.Connections
	// StratumWorker is the worker part of "<pool user>.<worker>" that the
	// listener's aggregated "stratum" pool links authorize as; default: the
	// listener's name with anything but [A-Za-z0-9_-] replaced by '_'.
	StratumWorker string `toml:"stratum_worker"`
	// MultiUser lets each miner's name choose the sub-account: "alice.rig7"
	// works for "alice" as "rig7", on pool links of alice's own, and a name
	// without a dot is refused. PoolUser and the pools' User must then be
	// empty. SubAccounts tunes it ([listen.subaccounts]); after
	// ApplyDefaults it is filled for every multi-user listener.
	MultiUser   bool              `toml:"multi_user"`
	SubAccounts SubAccountOptions `toml:"subaccounts"`
	Pools       []Pool            `toml:"pool"` // [[listen.pool]]: ordered failover list, at least one
}

// Pool is one pool endpoint in a listener's failover list.
type Pool struct {
	Host          string `toml:"host"`            // required
	Port          int    `toml:"port"`            // required 1..65535
	User          string `toml:"user"`            // optional override of the listener's pool_user; see Listener.UserFor
	TLS           bool   `toml:"tls"`             // dial with TLS
	TLSSkipVerify bool   `toml:"tls_skip_verify"` // accept any certificate (only with tls)
	Protocol      string `toml:"protocol"`        // "agent" (default) | "stratum" | "stratum-per-miner" | "sv2" | "sv2-per-miner"
	// AuthorityPubkey is an SV2 pool's authority public key (base58check, as
	// SV2 pools publish it): the Noise handshake is refused unless the
	// pool's certificate is signed by it.
	AuthorityPubkey string `toml:"authority_pubkey"`
	// SV2TOFU accepts an SV2 pool without an authority key: the link is
	// encrypted but nothing proves who is at the other end, so it must be
	// asked for explicitly, and every connect logs the server's key.
	SV2TOFU bool `toml:"sv2_tofu"`
	// Proxy replaces upstream.proxy for this pool when set (an empty list
	// means direct); nil inherits it. The two switches likewise inherit
	// the [upstream] ones when left out.
	Proxy               []string `toml:"proxy"`
	ProxyRaceDirect     *bool    `toml:"proxy_race_direct"`
	ProxyFallbackDirect *bool    `toml:"proxy_fallback_direct"`
}

// IsSV2 reports whether the pool speaks Stratum V2.
func (p *Pool) IsSV2() bool { return p.Protocol == ProtocolSV2 || p.Protocol == ProtocolSV2PerMiner }

// ProxySettings is how one pool is reached: its effective proxy list and
// the two direct-connection switches.
type ProxySettings struct {
	Proxies        []string
	RaceDirect     bool
	FallbackDirect bool
}

// ProxyFor resolves p's proxy settings against the [upstream] defaults.
func (u *UpstreamOptions) ProxyFor(p *Pool) ProxySettings {
	s := ProxySettings{Proxies: u.Proxy, RaceDirect: u.ProxyRaceDirect, FallbackDirect: u.ProxyFallbackDirect}
	if p == nil {
		return s
	}
	if p.Proxy != nil {
		s.Proxies = p.Proxy
	}
	if p.ProxyRaceDirect != nil {
		s.RaceDirect = *p.ProxyRaceDirect
	}
	if p.ProxyFallbackDirect != nil {
		s.FallbackDirect = *p.ProxyFallbackDirect
	}
	return s
}

// Default returns a configuration with every default set and no listeners.
func Default() *Config {
	return &Config{
		LogLevel:     "info",
		LogFormat:    "text",
		LogMaxSizeMB: 50,
		LogMaxFiles:  5,
		HTTPListen:   "127.0.0.1:8080",
		HTTPMaxConns: 64,
		Upstream: UpstreamOptions{
			Connections:      2,
			FlushInterval:    20 * time.Millisecond,
			DialTimeout:      15 * time.Second,
			HandshakeTimeout: 15 * time.Second,
			DeadAfter:        90 * time.Second,
			ReconnectMin:     time.Second,
			ReconnectMax:     60 * time.Second,
			FailbackInterval: 60 * time.Second,
			UserAgent:        DefaultUserAgent,
		},
		Miner: MinerOptions{
			MaxLineBytes:      16384,
			WriteBufferBytes:  32768,
			LoginTimeout:      60 * time.Second,
			IdleTimeout:       15 * time.Minute,
			MaxRequestsPerSec: 50,
		},
		Outage: OutageOptions{
			Policy:          OutageWait,
			Wait:            120 * time.Second,
			FakeJobInterval: 30 * time.Second,
		},
		FarmWatch: DefaultFarmWatch(),
	}
}

// DefaultFarmWatch returns the [farm_watch] defaults.
func DefaultFarmWatch() FarmWatchOptions {
	return FarmWatchOptions{
		Expire:              7 * 24 * time.Hour,
		MaxMiners:           100000,
		Grace:               2 * time.Minute,
		IdleFactor:          10,
		IdleMin:             2 * time.Minute,
		SlowPercent:         50,
		SlowWindow:          time.Hour,
		HashrateDropPercent: 20,
		HashrateDropWindow:  10 * time.Minute,
		LinkDownAfter:       60 * time.Second,
		SweepInterval:       10 * time.Second,
		SaveInterval:        time.Minute,
	}
}

// ApplyDefaults fills the per-listener and per-pool defaults that depend on
// other settings (address, name, connections, protocol). Load and Parse call
// it; code that builds a Config by hand should too, before Validate.
func (c *Config) ApplyDefaults() {
	if len(c.HTTPAllowedHosts) == 0 {
		c.HTTPAllowedHosts = nil // `= []` and no key are the same setting
	}
	if len(c.Upstream.Proxy) == 0 {
		c.Upstream.Proxy = nil // "proxy = []" and no key mean the same here
	}
	for i := range c.Listen {
		l := &c.Listen[i]
		if l.Address == "" {
			l.Address = "0.0.0.0"
		}
		if l.Name == "" {
			l.Name = l.Key()
		}
		if l.Connections == 0 {
			l.Connections = c.Upstream.Connections
		}
		l.applySubAccountDefaults()
		for j := range l.Pools {
			if l.Pools[j].Protocol == "" {
				l.Pools[j].Protocol = ProtocolAgent
			}
		}
	}
}

// Key is the listener's bind address, "address:port".
func (l *Listener) Key() string {
	addr := l.Address
	if addr == "" {
		addr = "0.0.0.0"
	}
	return net.JoinHostPort(addr, strconv.Itoa(l.Port))
}

// UserFor is the sub-account to log in to p with: the pool's own user if
// set, else the listener's pool_user.
func (l *Listener) UserFor(p *Pool) string {
	if p.User != "" {
		return p.User
	}
	return l.PoolUser
}

// Addr is the pool's dial address, "host:port".
func (p *Pool) Addr() string {
	return net.JoinHostPort(p.Host, strconv.Itoa(p.Port))
}

// PluginsFor returns the plugin specs that apply to the listener on port, in
// file order.
func (c *Config) PluginsFor(port int) []*PluginSpec {
	var out []*PluginSpec
	for i := range c.Plugins {
		if c.Plugins[i].AppliesTo(port) {
			out = append(out, &c.Plugins[i])
		}
	}
	return out
}
