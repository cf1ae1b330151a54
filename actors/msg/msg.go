// Package msg is the vocabulary of btcagent: one typed value per event that
// crosses an actor boundary or reaches a plugin. It is a leaf package (it
// imports only codec and the standard library) so plugins can depend on it
// without pulling in the actors. Values sent between actors are immutable
// once sent unless a field's comment says who may change it.
package msg

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"time"

	"github.com/btcagent/btcagent/codec"
)

// Job is one pool job as the agent hands it to miners. It is built once per
// job per upstream link and shared read-only by every miner on that link.
type Job struct {
	ID          string        // miner-facing job id: unique per link generation (see Gen)
	PoolID      string        // the pool's short job id as sent ("0".."255")
	ShortID     uint8         // PoolID as the byte the binary submit carries
	Gen         uint64        // link generation: changes on every (re)connect of any upstream
	Notify      *codec.Notify // the pool's notify (coinb1 without the upstream EN1)
	UpstreamEN1 string        // 8 hex digits appended to coinb1 for miners
	Line        []byte        // miner-facing mining.notify line, clean flag as the pool sent it
	CleanLine   []byte        // the same line with clean_jobs forced true (joins, moves)
	NTime       uint32
	Version     uint32
	Hash        *codec.HashJob // coinb1 already includes UpstreamEN1
	Received    time.Time      // when the upstream read it
	Fake        bool           // placeholder job during an outage: shares are never forwarded
	Clean       bool
}

// Route names the pool group a miner is placed on. The empty route is the
// listener's own pool_user and [[listen.pool]] list; plugins may add others.
type Route struct {
	Name     string
	PoolUser string
	Pools    []PoolAddr
}

// PoolAddr is one entry of an ordered failover list.
type PoolAddr struct {
	Host          string
	Port          int
	User          string // overrides the route's PoolUser when set
	TLS           bool
	TLSSkipVerify bool
	Protocol      string
	Proxy         PoolDialer // nil: the pool is dialed directly
	// Stratum V2 pools: the authority key the pool's certificate must be
	// signed by (base58check, checked by config), or SV2TOFU to accept the
	// pool's key unverified.
	AuthorityPubkey string
	SV2TOFU         bool
}

// PoolDialer opens a pool connection other than by a direct TCP dial:
// through upstream proxies (internal/proxydial.Plan). It does the TLS
// handshake with the pool itself when tlsCfg is set, because TLS runs
// inside the proxy's tunnel.
type PoolDialer interface {
	Dial(ctx context.Context, addr string, timeout time.Duration, tlsCfg *tls.Config) (net.Conn, error)
}

// MinerInfo describes a miner to plugins and to the status API.
type MinerInfo struct {
	SessionID uint16
	Listener  string // the listener's name
	Port      int    // the listener's port
	Remote    netip.AddrPort
	UserAgent string // as sent in mining.subscribe, passed through codec.PrintableUA
	User      string // as sent in mining.authorize
	Worker    string // the worker name registered at the pool (after plugins)
}

// Verdict is a plugin's answer to a hook.
type Verdict uint8

// Verdicts, from the most permissive.
const (
	Continue Verdict = iota // pass to the next plugin and then the core
	Reject                  // answer the miner with the hook's Code/Text; stop the chain
	Drop                    // close the miner's connection (connect/authorize) or silently drop (jobs)
)

// MinerConnecting is the connect hook: a new TCP connection on a listener.
type MinerConnecting struct {
	Listener string
	Port     int
	Remote   netip.AddrPort
	Text     string // why, when a plugin rejects
}

// MinerAuthorizing is the authorize hook. Plugins may rewrite Info.Worker;
// on Reject the miner gets Code/Text.
type MinerAuthorizing struct {
	Info     MinerInfo
	Password string
	Code     codec.Status
	Text     string
	Scratch  *Scratch
}

// ShareSubmitted is the submit hook, run inside the miner's actor before the
// share costs uplink. On Reject the miner gets Code/Text and the share is
// counted as a local reject.
type ShareSubmitted struct {
	Info        *MinerInfo
	Job         *Job
	Difficulty  float64 // the miner's difficulty when the job was sent
	MinerEN1    [4]byte
	ExtraNonce2 uint32
	NTime       uint32
	Nonce       uint32
	VersionBits uint32
	HasVersion  bool
	VersionMask uint32 // the mask granted to this miner
	Latest      bool   // Job is the newest job the miner has
	StaleBlock  bool   // a newer block (clean job) arrived after Job
	Code        codec.Status
	Text        string
	Scratch     *Scratch
	Now         time.Time
	// Reconnect asks the core to send client.reconnect after handling the
	// share (for firmware that must be restarted, e.g. lost ASICBoost).
	Reconnect bool
	// BlockCandidate is set by a plugin that hashed the share and found it
	// meets the network target: the core writes it to the pool at once
	// instead of waiting for the flush window.
	BlockCandidate bool
}

// Scratch is per-miner storage for plugins, owned by the miner's actor: a
// synchronous plugin may keep state here without locks, because the chain
// runs on that actor's goroutine. Index by the plugin's chain position.
type Scratch struct {
	slots []any
}

// Get returns slot i (nil when unset).
func (s *Scratch) Get(i int) any {
	if s == nil || i >= len(s.slots) {
		return nil
	}
	return s.slots[i]
}

// Set stores v in slot i.
func (s *Scratch) Set(i int, v any) {
	for len(s.slots) <= i {
		s.slots = append(s.slots, nil)
	}
	s.slots[i] = v
}

// JobArrived is the job hook, run by the upstream actor once per job before
// fan-out. Plugins may inspect it (the Job must not be changed).
type JobArrived struct {
	Listener string
	Route    string
	Job      *Job
}

// UpstreamSelecting is the pool-selection hook, run by the coordinator when a
// miner is placed. A plugin may set Route to one of the routes it declared.
type UpstreamSelecting struct {
	Info     MinerInfo
	Hashrate float64 // the miner's estimated hashrate (H/s), 0 when unknown
	Route    string
}

// MinerLoad is one placed miner as a rebalancing plugin sees it.
type MinerLoad struct {
	Info     MinerInfo
	Route    string
	Hashrate float64 // estimated H/s over the last minutes
}

// RouteMove asks the coordinator to move a miner to another route; the miner
// keeps its connection and gets the new route's job.
type RouteMove struct {
	SessionID uint16
	Route     string
}

// StatsTick is the periodic stats hook (once per minute per listener).
type StatsTick struct {
	Listener       string
	Miners         int
	Hashrate       float64
	Accepted       int64
	Rejected       int64
	UpstreamsReady int
	At             time.Time
}
