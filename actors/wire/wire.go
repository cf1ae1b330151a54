// Package wire holds the messages the core actors exchange that carry actor
// addresses (PIDs) or internal bookkeeping. Plugins never see these; their
// vocabulary is package msg, which stays free of protoactor types.
package wire

import (
	"github.com/asynkron/protoactor-go/actor"
	"github.com/btcagent/btcagent/actors/stats"
)

// Attach asks an upstream link to take a miner: REGISTER it at the pool and
// send it the default difficulty, the version mask and the last job (clean).
type Attach struct {
	Miner       *actor.PID
	SessionID   uint16
	UserAgent   string
	Worker      string
	VersionMask uint32
	Stats       *stats.Miner
	// ExtranonceSub: the miner sent mining.extranonce.subscribe, so a link
	// may change its extranonce (stratum-per-miner pools with a small EN2).
	ExtranonceSub bool
}

// AttachRefused is a slot's answer to an Attach that arrived after its link was lost.
type AttachRefused struct {
	Slot      int
	SessionID uint16
	// KeepSlot: the slot is fine, only this miner cannot be served there
	// (its per-miner link failed, or the pool cannot map its extranonce).
	KeepSlot bool
	Reason   string
}

// Detach removes a miner from an upstream link (UNREGISTER at the pool).
type Detach struct {
	SessionID uint16
}

// Attached tells a miner which upstream link now serves it. Everything the
// link sends the miner afterwards (difficulty, jobs, verdicts) comes from the
// same sender, so per-miner order is the pool's order.
type Attached struct {
	Upstream *actor.PID
	Gen      uint64
	Pool     string
	// EN1 and EN2Size, when EN1 is set, replace the miner's extranonce
	// (mining.set_extranonce; only for miners that subscribed to it). Empty
	// means the session's own: "%08x" of its id and 4 bytes.
	EN1     string
	EN2Size int
}

// Parked tells a miner it has no upstream for now (outage policy applies).
type Parked struct {
	Reason string
}

// Submit carries one share from a miner to its upstream link.
type Submit struct {
	Miner *actor.PID
	ReqID []byte // the miner's JSON id (copied)
	Gen   uint64 // the link generation of the job
	Share ShareFields
	Diff  float64
	Stats *stats.Miner
}

// ShareFields is the binary content of a share.
type ShareFields struct {
	SessionID   uint16
	ShortJobID  uint8
	ExtraNonce2 uint32
	Nonce       uint32
	NTime       uint32
	JobNTime    uint32
	VersionBits uint32
	HasVersion  bool
}

// Tick drives per-miner timeouts from one ticker instead of a timer per miner.
type Tick struct {
	UnixNano int64
}

// SnapshotRequest asks the coordinator for its view (tests, API).
type SnapshotRequest struct{}

// Snapshot is the coordinator's answer.
type Snapshot struct {
	Listener  string
	Miners    int
	Placed    int
	Parked    int
	Upstreams []UpstreamState
}

// UpstreamState describes one link slot.
type UpstreamState struct {
	Slot   int
	Route  string
	Ready  bool
	Pool   string
	Gen    uint64
	Miners int
	Since  int64
	Error  string
	// Protocol of the pool link: agent, stratum or stratum-per-miner.
	Protocol string
}

// DisconnectAll asks a coordinator to disconnect every miner it knows (sent
// by Agent.Reload before it retires a listener's coordinator). With Reconnect
// the miners get client.reconnect first, so they come straight back.
type DisconnectAll struct {
	Reason    string
	Reconnect bool
}
