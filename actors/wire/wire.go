// Package wire holds the messages the core actors exchange that carry actor
// addresses (PIDs, miner handles) or internal bookkeeping, and the two small
// interfaces of the share path: Miner (a session as its links see it) and
// Sink (the hot half of a pool link). Plugins never see these; their
// vocabulary is package msg, which stays free of protoactor types.
package wire

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/actors/stats"
	"github.com/btcagent/btcagent/codec"
)

// Miner is a miner session as the coordinator and the links address it.
// Sessions are actors without a protoactor mailbox (docs/ARCHITECTURE.md):
// Tell runs the message on the caller's goroutine when the session is idle
// and queues it when another goroutine is running it, so messages are
// handled one at a time and in each sender's order, and Tell never blocks.
type Miner interface {
	Tell(m any)
	// AnswerShare is Tell(&ShareAnswered{...}) without the allocation:
	// reqID is copied only if the answer has to be queued.
	AnswerShare(reqID []byte, status codec.Status, text string)
}

// Sink is the hot half of a pool link (agent protocol): the miner's own
// goroutine encodes its share into the link's buffer, and the event loop
// writes the buffer when its flush window closes. The link's actor keeps
// everything else.
type Sink interface {
	// Gen is the link generation whose jobs this sink carries.
	Gen() uint64
	// Submit queues one share. It returns 0 when the share is queued (its
	// answer comes later through p.Miner) or the status to answer at once
	// when the link can no longer carry it. Urgent (a block candidate)
	// asks for the buffer to be written without waiting for the window.
	// Both are passed by value: through an interface a pointer would make
	// them escape, an allocation per share.
	Submit(sh codec.Share, p Pending, urgent bool) codec.Status
}

// Pending is a share waiting for its answer: who to tell, and what to count.
type Pending struct {
	Miner Miner
	ReqID ReqID
	Diff  float64
	Stats *stats.Miner
}

// ReqID holds a miner's JSON request id without a heap allocation for the
// usual short ids (numbers, short strings).
type ReqID struct {
	inline [22]byte
	n      uint8
	long   []byte
}

// SetReqID copies b into r.
func (r *ReqID) Set(b []byte) {
	if len(b) <= len(r.inline) {
		r.n = uint8(copy(r.inline[:], b))
		r.long = nil
		return
	}
	r.n = 0
	r.long = append([]byte(nil), b...)
}

// Bytes returns the id; it aliases r, so r must not move while it is used.
func (r *ReqID) Bytes() []byte {
	if r.long != nil {
		return r.long
	}
	return r.inline[:r.n]
}

// Attach asks an upstream link to take a miner: REGISTER it at the pool and
// send it the default difficulty, the version mask and the last job (clean).
type Attach struct {
	Miner       Miner
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
	// Sink, when set, takes this link's shares directly (agent links);
	// otherwise shares go to Upstream as Submit messages.
	Sink Sink
	// EN1 and EN2Size, when EN1 is set, replace the miner's extranonce
	// (mining.set_extranonce; only for miners that subscribed to it). Empty
	// means the session's own: "%08x" of its id and 4 bytes.
	EN1     string
	EN2Size int
}

// Replay is sent by a coordinator that restarted after a panic to each miner
// it took over: the miner forgets its link (the links went with the old
// coordinator) and, if it is authorized, sends its MinerAuthorized again.
type Replay struct{}

// Parked tells a miner it has no upstream for now (outage policy applies).
type Parked struct {
	Reason string
}

// Submit carries one share from a miner to its upstream link's actor: the
// path for links without a Sink (plain Stratum) and for late shares of a
// link that is being replaced.
type Submit struct {
	Gen     uint64 // the link generation of the job
	Share   codec.Share
	Pending Pending
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
	// MultiUser listeners only: the sub-accounts with pool links, by name,
	// and their cap.
	SubAccounts    []SubAccountState
	SubAccountsMax int
}

// SubAccountState is one sub-account of a multi-user listener: its
// authorized miners, their hashrate and shares (including those of miners
// gone since its links opened) and its links (the slots of its route).
type SubAccountState struct {
	Name      string
	Miners    int
	Hashrate  float64 // H/s, the miners' estimates added
	Accepted  int64
	Rejected  int64
	Ready     int
	Total     int
	IdleSince time.Time // zero while it has miners
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

// ---- events between actors (moved from actors/msg: no plugin sees them) ----

// MinerAuthorized asks the coordinator to place an authorized miner.
type MinerAuthorized struct {
	Info          msg.MinerInfo
	VersionMask   uint32 // the mask the miner asked for (0: no version rolling)
	ExtranonceSub bool   // the miner sent mining.extranonce.subscribe before authorizing
	// SubAccount is set on multi-user listeners: the sub-account the
	// miner's name chose. The coordinator answers with Admitted.
	SubAccount string
}

// Admitted is a multi-user coordinator's answer to MinerAuthorized. Code 0
// admits the miner to its sub-account; otherwise the sub-account could not
// be given links (the listener's cap) and the miner's authorize is answered
// with Code and Text. The coordinator tells the miner before it places it,
// so the authorize answer precedes the first job.
type Admitted struct {
	Code codec.Status
	Text string
}

// MinerGone tells the coordinator a miner's connection ended.
type MinerGone struct {
	SessionID uint16
	Reason    string
}

// UpstreamReady is sent by an upstream link after a successful handshake.
type UpstreamReady struct {
	Slot        int
	Gen         uint64
	Pool        string
	Protocol    string // agent, stratum or stratum-per-miner
	VersionMask uint32
}

// UpstreamLost is sent by an upstream link that lost its connection; Miners are
// the sessions that were attached to it and must be placed again.
type UpstreamLost struct {
	Slot   int
	Gen    uint64
	Pool   string
	Reason string
	Miners []uint16
}

// JobNotified delivers a job to one miner; Clean forces clean_jobs true.
type JobNotified struct {
	Job   *msg.Job
	Clean bool
}

// DifficultySet delivers a difficulty to one miner (from SET_DIFF or the
// pool's default for new miners). It is always sent before the job it applies to.
type DifficultySet struct {
	Difficulty float64
}

// VersionMaskSet delivers the pool's granted version-rolling mask.
type VersionMaskSet struct {
	Mask uint32
}

// ShareAnswered is the verdict for one share, relayed to the miner.
type ShareAnswered struct {
	ReqID  []byte // the miner's JSON id, echoed
	Status codec.Status
	Text   string
}

// Disconnect asks a miner's actor to close its connection.
type Disconnect struct {
	Reason    string
	Reconnect bool // send client.reconnect first
}
