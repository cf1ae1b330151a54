// Package sharecheck is the "share-check" plugin: it judges each share the
// way the pool will (btcpool's checks, in its order, with its status codes)
// before the share costs uplink, and answers the miner itself when the pool
// would reject it. Miners with broken firmware, wrong difficulty handling or
// stale work then burn their own time, not the farm's pool link, and the
// miner sees the real reason at once even in optimistic-answer mode.
//
// Checks, in the pool's order (docs/PROTOCOL.md §9, docs/SHARES.md):
//
//	21 Job not found (=stale)  the job is from before a new block, or older than the `jobs` ring
//	33 Invalid version mask    version bits outside the mask granted to the miner
//	31 Time too old            ntime below the job's ntime
//	32 Time too new            ntime more than 7200 s above the job's ntime
//	22 Duplicate share         same extranonce2, nonce, ntime and version bits on the same job
//	23 Low difficulty          sha256d of the header above the target of the job's difficulty
//
// The miner's actor has already answered 21 for job ids it does not know.
// Duplicate keys are kept per miner (in its Scratch) for the last `jobs`
// jobs it submitted to, at most `max_shares_per_job` each; a new block
// drops them all. The hash check costs one header hash per share (see the
// benchmark in sharecheck_test.go); `skip_hash = true` leaves it to the pool
// on hardware too weak for it.
//
//	[[plugins]]
//	name = "share-check"
//	# jobs = 8                 # per-miner job ring for duplicates (the core keeps 8)
//	# max_shares_per_job = 256   # worst case 8 x 256 x 16 B = 32 KB per miner
//	# skip_hash = false
package sharecheck

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/plugins"
)

// Name is the plugin's registry name.
const Name = "share-check"

// Defaults and the pool's fixed rule.
const (
	DefaultJobs            = 8
	DefaultMaxSharesPerJob = 256
	MaxNTimeAhead          = 7200 // seconds a share's ntime may run ahead of its job's (btcpool)
)

func init() {
	plugins.Register(plugins.Info{
		Name:        Name,
		Description: "rejects stale, duplicate, badly timed, bad-version and low-difficulty shares locally, with the pool's codes",
		New:         func() plugins.Plugin { return new(ShareCheck) },
	})
}

// ShareCheck is the plugin and its options.
type ShareCheck struct {
	Jobs            int  `toml:"jobs"`               // jobs per miner with duplicate sets (the "ring")
	MaxSharesPerJob int  `toml:"max_shares_per_job"` // duplicate keys kept per job and miner
	SkipHash        bool `toml:"skip_hash"`          // leave the difficulty check to the pool

	slot int
}

var (
	_ plugins.Provisioner = (*ShareCheck)(nil)
	_ plugins.SubmitHook  = (*ShareCheck)(nil)
)

// PluginName implements plugins.Plugin.
func (*ShareCheck) PluginName() string { return Name }

// Provision applies defaults.
func (s *ShareCheck) Provision(env plugins.Env) error {
	switch {
	case s.Jobs == 0:
		s.Jobs = DefaultJobs
	case s.Jobs < 1 || s.Jobs > 256:
		return fmt.Errorf("jobs = %d: want 1..256", s.Jobs)
	}
	switch {
	case s.MaxSharesPerJob == 0:
		s.MaxSharesPerJob = DefaultMaxSharesPerJob
	case s.MaxSharesPerJob < 1:
		return fmt.Errorf("max_shares_per_job = %d: must be positive", s.MaxSharesPerJob)
	}
	s.slot = env.Index
	return nil
}

// shareKey identifies a share within a job, as the pool's duplicate check
// does (the miner's EN1 is implied: the state is per miner).
type shareKey struct {
	en2, nonce, ntime, bits uint32
}

// jobShares is the duplicate set of one job.
type jobShares struct {
	id       string
	received time.Time
	keys     []shareKey // a slice: a handful of shares per job is the norm, and a scan beats a map there
}

// minerState lives in the miner's Scratch slot. Only the miner's actor
// touches it, so it needs no lock.
type minerState struct {
	jobs   []jobShares
	diff   float64
	target codec.Target // cached: computing it costs more than the hash
}

// OnSubmit runs the checks; the first failing one decides the code.
func (s *ShareCheck) OnSubmit(m *msg.ShareSubmitted) msg.Verdict {
	j := m.Job
	if j == nil || m.StaleBlock {
		return reject(m, codec.StatusJobNotFoundOrStale)
	}
	st, _ := m.Scratch.Get(s.slot).(*minerState)
	if st == nil {
		st = &minerState{jobs: make([]jobShares, 0, s.Jobs), diff: -1}
		m.Scratch.Set(s.slot, st)
	}
	set := st.find(j, m.Latest, s.Jobs)
	if set == nil {
		return reject(m, codec.StatusJobNotFoundOrStale)
	}
	version := j.Version
	if m.HasVersion {
		v, ok := codec.RolledVersion(j.Version, m.VersionBits, m.VersionMask)
		if !ok {
			return reject(m, codec.StatusIllegalVersionMask)
		}
		version = v
	}
	if m.NTime < j.NTime {
		return reject(m, codec.StatusTimeTooOld)
	}
	if uint64(m.NTime) > uint64(j.NTime)+MaxNTimeAhead {
		return reject(m, codec.StatusTimeTooNew)
	}
	bits := uint32(0)
	if m.HasVersion {
		bits = m.VersionBits
	}
	key := shareKey{en2: m.ExtraNonce2, nonce: m.Nonce, ntime: m.NTime, bits: bits}
	for i := range set.keys {
		if set.keys[i] == key {
			return reject(m, codec.StatusDuplicateShare)
		}
	}
	// Like the pool, remember the share before the hash: resending a
	// low-difficulty share is a duplicate too.
	if len(set.keys) < s.MaxSharesPerJob {
		set.keys = append(set.keys, key)
	}
	if s.SkipHash || j.Hash == nil {
		return msg.Continue
	}
	if m.Difficulty != st.diff {
		st.diff, st.target = m.Difficulty, codec.TargetFromDifficulty(m.Difficulty)
	}
	var en2 [4]byte
	binary.BigEndian.PutUint32(en2[:], m.ExtraNonce2)
	h := j.Hash.Hash(m.MinerEN1[:], en2[:], version, m.NTime, m.Nonce)
	if !st.target.Met(h) {
		return reject(m, codec.StatusLowDifficulty)
	}
	// A block: the core writes it to the pool at once, not at the end of
	// the flush window.
	m.BlockCandidate = j.Hash.Network.Met(h)
	return msg.Continue
}

func reject(m *msg.ShareSubmitted, code codec.Status) msg.Verdict {
	m.Code, m.Text = code, "" // the core sends the pool's text for the code
	return msg.Reject
}

// find returns the duplicate set of job j, making room for it if needed. It
// returns nil when j is older than every job in a full ring: the miner has
// submitted to `ring` newer jobs since, so j is no longer live.
func (st *minerState) find(j *msg.Job, latest bool, ring int) *jobShares {
	for i := range st.jobs {
		if st.jobs[i].id == j.ID {
			return &st.jobs[i]
		}
	}
	if j.Clean {
		// A new block: every share of an older job is stale, so their sets
		// can never match again.
		kept := st.jobs[:0]
		for _, e := range st.jobs {
			if !e.received.Before(j.Received) {
				kept = append(kept, e)
			}
		}
		clear(st.jobs[len(kept):])
		st.jobs = kept
	}
	if len(st.jobs) < ring {
		st.jobs = append(st.jobs, jobShares{id: j.ID, received: j.Received})
		return &st.jobs[len(st.jobs)-1]
	}
	oldest := 0
	for i := range st.jobs {
		if st.jobs[i].received.Before(st.jobs[oldest].received) {
			oldest = i
		}
	}
	if !latest && j.Received.Before(st.jobs[oldest].received) {
		return nil
	}
	// Reuse the evicted set's memory.
	st.jobs[oldest] = jobShares{id: j.ID, received: j.Received, keys: st.jobs[oldest].keys[:0]}
	return &st.jobs[oldest]
}
