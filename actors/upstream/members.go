package upstream

import (
	"strconv"
	"time"

	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/actors/stats"
	"github.com/btcagent/btcagent/actors/wire"
	"github.com/btcagent/btcagent/codec"
	"github.com/sirupsen/logrus"
)

// ---- miners ----

func (s *Slot) attach(m *wire.Attach) {
	if !s.ready {
		// The link went down after the coordinator chose us: hand the miner back.
		s.tell(s.env.Coordinator, &wire.AttachRefused{Slot: s.env.Slot, SessionID: m.SessionID})
		return
	}
	if old, ok := s.attached[m.SessionID]; ok {
		s.leave(m.SessionID, old)
	}
	a := &attached{miner: m.Miner, agent: m.UserAgent, worker: m.Worker, mask: m.VersionMask, xsub: m.ExtranonceSub, st: m.Stats}
	s.attached[m.SessionID] = a
	s.attachOn(s.link, m.SessionID, a)
}

// attachOn serves miner a from main link l, in l's protocol.
func (s *Slot) attachOn(l *link, sid uint16, a *attached) {
	l.proto.attach(s, l, sid, a)
}

// serve makes main link l miner a's current link and welcomes it there.
// Protocols call it from attach once the miner is registered.
func (s *Slot) serve(l *link, sid uint16, a *attached) {
	l.members[sid] = struct{}{}
	s.setCur(a, l)
	s.welcome(a, l)
}

// welcome tells a miner which link serves it and gives it the link's mask,
// difficulty and newest job (clean), in that order.
func (s *Slot) welcome(a *attached, l *link) {
	at := &wire.Attached{Upstream: s.self, Gen: l.gen, Pool: l.name}
	l.proto.welcome(l, at)
	a.miner.Tell(at)
	if a.mask != 0 {
		a.miner.Tell(&wire.VersionMaskSet{Mask: l.mask})
	}
	// The pool judges the newest job at the difficulty it came with; a
	// difficulty set since applies from the next job.
	jd := l.diff
	if l.latest != nil {
		jd = l.latestDif
	}
	a.miner.Tell(&wire.DifficultySet{Difficulty: jd})
	if l.latest != nil {
		a.miner.Tell(&wire.JobNotified{Job: withCleanLine(l.latest), Clean: true})
	}
	if jd != l.diff {
		a.miner.Tell(&wire.DifficultySet{Difficulty: l.diff})
	}
}

func (s *Slot) detach(sid uint16) {
	a, ok := s.attached[sid]
	if !ok {
		return
	}
	delete(s.attached, sid)
	s.leave(sid, a)
}

// leave takes a miner off every link of this slot.
func (s *Slot) leave(sid uint16, a *attached) {
	a.want = 0
	cur := a.cur
	s.setCur(a, nil)
	if cur != nil && cur.solo {
		s.retire(cur) // its verdicts still count in the statistics
	}
	for _, l := range s.mainLinks() {
		if _, ok := l.members[sid]; ok {
			delete(l.members, sid)
			l.proto.leave(s, l, sid)
		}
	}
}

func (s *Slot) mainLinks() []*link {
	if s.link == nil {
		return s.retired
	}
	return append([]*link{s.link}, s.retired...)
}

// refuseMiner gives a miner back to the coordinator while the slot stays
// up: its own link failed or the pool cannot serve it.
func (s *Slot) refuseMiner(sid uint16, a *attached, reason string) {
	delete(s.attached, sid)
	s.leave(sid, a)
	s.limited("miner-refused", logrus.Fields{"worker": a.worker, "sid": sid}, "miner cannot be served on this pool link: "+reason)
	s.tell(s.env.Coordinator, &wire.AttachRefused{Slot: s.env.Slot, SessionID: sid, KeepSlot: true, Reason: reason})
}

// eachUser calls f for every miner whose current link is l.
func (s *Slot) eachUser(l *link, f func(*attached)) {
	if l.users == 0 {
		return
	}
	if l.solo {
		if a := s.attached[l.sid]; a != nil && a.cur == l {
			f(a)
		}
		return
	}
	for _, a := range s.attached {
		if a.cur == l {
			f(a)
		}
	}
}

// ---- jobs and difficulty ----

func (s *Slot) onJob(l *link, n *codec.Notify, at time.Time) {
	j := l.proto.job(s, l, n, at)
	if j == nil {
		return
	}
	l.latest, l.latestDif = j, l.diff
	// One message for all miners: it is read-only, and a fresh one per miner
	// would be 10,000 allocations per job.
	note := &wire.JobNotified{Job: j}
	if l.solo {
		s.eachUser(l, func(a *attached) { a.miner.Tell(note) })
		return
	}
	s.env.Chain.OnJob(&msg.JobArrived{Listener: s.env.Listener, Route: s.env.Route.Name, Job: j})
	// The broadcast: each Tell writes the pre-encoded line to the miner's
	// socket, on this goroutine and on the fan-out pool's idle writers.
	// Its duration from the job's arrival is the fan-out; jobs given later
	// to joining or moving miners are not part of it.
	if l.users > 0 {
		s.broadcast(l, note, at)
	}
	// The coordinator keeps the newest job as the template for placeholder work.
	s.tell(s.env.Coordinator, &msg.JobArrived{Listener: s.env.Listener, Route: s.env.Route.Name, Job: j})
}

// broadcast writes a job that arrived at time at to every miner of link l
// (the pool is a closed gate meanwhile) and records how long it took.
func (s *Slot) broadcast(l *link, note *wire.JobNotified, at time.Time) {
	start := time.Now()
	// The list is garbage after the job (16 B a miner, once per job):
	// kept, it would be live heap for every miner all the time.
	to := make([]wire.Miner, 0, l.users)
	s.eachUser(l, func(a *attached) { to = append(to, a.miner) })
	s.env.Fanout.Run(len(to), func(i int) { to[i].Tell(note) })
	end := time.Now()
	n := len(to)
	if at.IsZero() {
		return
	}
	if fo := s.env.Stats.FanoutNanos; fo != nil {
		fo.Observe(end.Sub(at))
	}
	s.env.Stats.Broadcasts.Add(stats.Broadcast{JobAt: at, Miners: n, Write: end.Sub(start), Done: end.Sub(at)})
}

// minerJob builds the job miners get: coinb1 extended by suffix (the link's
// extranonce part), and the pool's id replaced by "<gen hex>.<pool id>" so a
// share can never be matched to a same-numbered job of another link.
// withClean also builds the clean_jobs=true line for miners that join later.
func minerJob(gen uint64, short uint8, n *codec.Notify, at time.Time, suffix string, withClean bool) *msg.Job {
	id := strconv.FormatUint(gen, 16) + "." + n.JobID
	j := &msg.Job{
		ID: id, PoolID: n.JobID, ShortID: short, Gen: gen, Notify: n, UpstreamEN1: suffix,
		NTime: n.NTimeValue(), Version: n.VersionValue(), Received: at, Clean: n.Clean,
	}
	mn := *n
	mn.JobID = id
	j.Line = mn.AppendLine(make([]byte, 0, len(n.Coinb1)+len(suffix)+len(n.Coinb2)+80*len(n.Branches)+200), suffix, n.Clean)
	if n.Clean {
		j.CleanLine = j.Line
	} else if withClean {
		j.CleanLine = mn.AppendLine(nil, suffix, true)
	}
	return j
}

// withCleanLine returns j with CleanLine set (a copy when it was not built).
func withCleanLine(j *msg.Job) *msg.Job {
	if j.CleanLine != nil || j.Notify == nil {
		return j
	}
	c := *j
	mn := *j.Notify
	mn.JobID = j.ID
	c.CleanLine = mn.AppendLine(nil, j.UpstreamEN1, true)
	return &c
}

// onDiff applies a pool difficulty: to the miners sids of link l (agent
// SET_DIFF), or, with sids nil, as the link's own difficulty (Stratum
// mining.set_difficulty), which every miner of the link gets before the
// next job, as the pool meant it.
func (s *Slot) onDiff(l *link, d float64, sids []uint16) {
	m := &wire.DifficultySet{Difficulty: d}
	if sids != nil {
		for _, sid := range sids {
			if a, ok := s.attached[sid]; ok && a.cur == l {
				a.miner.Tell(m)
			}
		}
		return
	}
	if d == l.diff {
		return
	}
	l.diff = d
	s.eachUser(l, func(a *attached) { a.miner.Tell(m) })
}

func (s *Slot) onMask(l *link, mask uint32) {
	if mask == l.mask {
		return
	}
	l.mask = mask
	vm := &wire.VersionMaskSet{Mask: mask}
	s.eachUser(l, func(a *attached) { a.miner.Tell(vm) })
}

// ---- shares ----

// serves reports whether link l may carry shares of miner sid.
func (s *Slot) serves(l *link, sid uint16) bool {
	if l.solo {
		return l.sid == sid
	}
	_, ok := l.members[sid]
	return ok
}

// submit takes a share that came as a message: a plain Stratum link's, or
// a late share for an agent link that is being replaced (shares for a
// link's current generation go straight into its sink).
func (s *Slot) submit(m *wire.Submit) {
	sid := m.Share.SessionID
	l := s.links[m.Gen]
	if l == nil || s.attached[sid] == nil || !s.serves(l, sid) {
		// Never write a share the pool would drop without a verdict: that would
		// shift every later SUBMIT_RESPONSE onto the wrong miner.
		answerPending(s.env.Stats, &m.Pending, codec.StatusJobNotFoundOrStale, "job belongs to a pool link that is gone", true)
		return
	}
	l.proto.submit(s, l, m)
}
