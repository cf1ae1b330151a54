package poolsim

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/codec/sv2"
)

// Stats is a deep-copied snapshot of everything the pool counts. Rejected
// maps are keyed by StratumStatus code (JSON object keys are the decimal
// codes, e.g. "23").
type Stats struct {
	Time    time.Time              `json:"time"`
	Addr    string                 `json:"addr"`
	Totals  Totals                 `json:"totals"`
	Job     JobInfo                `json:"job"`
	Conns   []ConnStats            `json:"conns"`            // open connections, by ID
	Closed  []ConnStats            `json:"closed,omitempty"` // the last 64 closed connections, oldest first
	Workers map[string]WorkerStats `json:"workers"`          // by full name: "<sub-account>.<worker>" for agent workers, the authorize name for plain miners
	// SubAccounts are per sub-account (the authorize name up to its first
	// dot): links, workers and share counts. See LinksFor and AcceptedFor.
	SubAccounts map[string]SubAccountStats `json:"sub_accounts"`
	Events      []Event                    `json:"events"`        // the most recent events, oldest first
	TCP         []ConnTCP                  `json:"tcp,omitempty"` // only in the stats file and HTTP output
}

// Totals are pool-wide counters; byte counts include closed connections.
type Totals struct {
	Connections       int                     `json:"connections"` // open now
	AgentConns        int                     `json:"agent_conns"` // open now, recognised as agents
	ConnsAccepted     uint64                  `json:"conns_accepted"`
	ConnsRefused      uint64                  `json:"conns_refused"`
	ConnsClosed       uint64                  `json:"conns_closed"`
	AgentConnsTotal   uint64                  `json:"agent_conns_total"`
	RegisteredWorkers int                     `json:"registered_workers"` // live agent sessions + authorized plain miners
	Accepted          uint64                  `json:"accepted"`
	Rejected          map[codec.Status]uint64 `json:"rejected"`
	Solved            uint64                  `json:"solved"`
	Dropped           uint64                  `json:"dropped"` // shares dropped without a verdict (wrong size, unknown session, before authorize)
	Ignored           uint64                  `json:"ignored"` // other ex-messages ignored
	JobsSent          uint64                  `json:"jobs_sent"`
	Blocks            uint64                  `json:"blocks"`
	NotifiesSent      uint64                  `json:"notifies_sent"` // notify lines queued, over all connections
	SetDiffFrames     uint64                  `json:"set_diff_frames"`
	Restarts          uint64                  `json:"restarts"`
	BytesIn           uint64                  `json:"bytes_in"`
	BytesOut          uint64                  `json:"bytes_out"`
}

// JobInfo describes the current job.
type JobInfo struct {
	ID       string    `json:"id"`
	Seq      uint64    `json:"seq"`
	Clean    bool      `json:"clean"`
	PrevHash string    `json:"prevhash"`
	NTime    string    `json:"ntime"`
	Stamp    time.Time `json:"stamp"` // the time embedded in coinb1
}

// ConnStats describes one connection. Application bytes only (no TCP/IP
// overhead; see Pool.TCPInfo for segments).
type ConnStats struct {
	ID           uint64                  `json:"id"`
	Remote       string                  `json:"remote"`
	Agent        bool                    `json:"agent"`
	SV2          bool                    `json:"sv2,omitempty"` // an SV2 (Noise) connection; its frames are counted by SV2 message name
	UserAgent    string                  `json:"user_agent"`
	Subscribed   bool                    `json:"subscribed"`
	Authorized   bool                    `json:"authorized"`
	User         string                  `json:"user"`
	SubAccount   string                  `json:"sub_account,omitempty"` // User up to its first dot, once authorized
	EN1          string                  `json:"en1"`
	VersionMask  string                  `json:"version_mask,omitempty"` // granted by mining.configure
	Subres       bool                    `json:"subres"`
	Connected    time.Time               `json:"connected"`
	BytesIn      uint64                  `json:"bytes_in"`
	BytesOut     uint64                  `json:"bytes_out"`
	LinesIn      uint64                  `json:"lines_in"`
	LinesOut     uint64                  `json:"lines_out"`
	BadLines     uint64                  `json:"bad_lines"`
	FramesIn     map[string]uint64       `json:"frames_in"` // by command name (codec.CmdName)
	FramesOut    map[string]uint64       `json:"frames_out"`
	Workers      int                     `json:"workers"`   // live agent sessions on this link (1 for an authorized miner)
	Validated    uint64                  `json:"validated"` // shares that reached validation (each took a submit index)
	SubmitIndex  uint16                  `json:"submit_index"`
	Accepted     uint64                  `json:"accepted"`
	Rejected     map[codec.Status]uint64 `json:"rejected"`
	Dropped      uint64                  `json:"dropped"`
	Ignored      uint64                  `json:"ignored"`
	Suppressed   uint64                  `json:"suppressed"`    // bytes not sent because the pool was silent
	RecentFrames []string                `json:"recent_frames"` // raw hex of the last ex-messages received
	Closed       time.Time               `json:"closed,omitzero"`
	CloseReason  string                  `json:"close_reason,omitempty"`
}

// WorkerStats describes one worker name. It survives disconnects.
type WorkerStats struct {
	Name       string                  `json:"name"`
	SubAccount string                  `json:"sub_account"` // the link's authorize name up to its first dot
	Worker     string                  `json:"worker"`      // the part after it: the REGISTER name, or a plain miner's
	Online     bool                    `json:"online"`
	Sessions   int                     `json:"sessions"` // live sessions with this name
	Conn       uint64                  `json:"conn"`     // connection of the latest registration
	Agent      bool                    `json:"agent"`
	SessionID  uint16                  `json:"session_id"` // agent workers only
	UserAgent  string                  `json:"user_agent"`
	Difficulty float64                 `json:"difficulty"`
	Accepted   uint64                  `json:"accepted"`
	Rejected   map[codec.Status]uint64 `json:"rejected"`
	LastShare  time.Time               `json:"last_share,omitzero"`
	LastStatus codec.Status            `json:"last_status"`
	Registered time.Time               `json:"registered"`
}

// Event is one notable thing that happened, for tests and post-mortems.
type Event struct {
	Time   time.Time `json:"time"`
	Conn   uint64    `json:"conn,omitempty"`
	Kind   string    `json:"kind"`
	Detail string    `json:"detail,omitempty"`
}

// Conn returns the open connection with this id.
func (s *Stats) Conn(id uint64) (ConnStats, bool) {
	for _, c := range s.Conns {
		if c.ID == id {
			return c, true
		}
	}
	return ConnStats{}, false
}

// ConnByEN1 returns the open connection with this EN1 (8 hex digits).
func (s *Stats) ConnByEN1(en1 string) (ConnStats, bool) {
	for _, c := range s.Conns {
		if c.EN1 == en1 {
			return c, true
		}
	}
	return ConnStats{}, false
}

// EventsOf returns the events of one kind, oldest first.
func (s *Stats) EventsOf(kind string) []Event {
	var out []Event
	for _, e := range s.Events {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// totals is the internal form of Totals.
type totals struct {
	connsAccepted, refused, connsClosed, agentConns uint64
	accepted, solved, dropped, ignored              uint64
	rejected                                        map[codec.Status]uint64
	jobs, blocks, notifies, setDiffFrames, restarts uint64
	closedBytesIn, closedBytesOut                   uint64
}

// eventRing keeps the last events.
type eventRing struct {
	buf []Event
	pos int
	n   int
}

func newEventRing(n int) eventRing { return eventRing{buf: make([]Event, n)} }

func (p *Pool) eventLocked(conn uint64, kind, detail string) {
	r := &p.events
	r.buf[r.pos] = Event{Time: time.Now(), Conn: conn, Kind: kind, Detail: detail}
	r.pos = (r.pos + 1) % len(r.buf)
	if r.n < len(r.buf) {
		r.n++
	}
	if kind != "job" {
		p.log.WithField("conn", conn).Debugf("poolsim %s: %s", kind, detail)
	}
}

func (r *eventRing) list() []Event {
	out := make([]Event, 0, r.n)
	for i := 0; i < r.n; i++ {
		out = append(out, r.buf[(r.pos-r.n+i+len(r.buf))%len(r.buf)])
	}
	return out
}

// Stats returns a deep-copied snapshot.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.snapshotLocked()
}

func sv2Map(m map[uint8]uint64) map[string]uint64 {
	out := make(map[string]uint64, len(m))
	for k, v := range m {
		out[sv2.MsgName(k)] = v
	}
	return out
}

func cmdMap(m map[byte]uint64) map[string]uint64 {
	out := make(map[string]uint64, len(m))
	for k, v := range m {
		out[codec.CmdName(k)] = v
	}
	return out
}

func (c *conn) statsLocked() ConnStats {
	cs := ConnStats{
		ID:           c.id,
		Remote:       c.remote,
		Agent:        c.agent,
		UserAgent:    c.userAgent,
		Subscribed:   c.subscribed,
		Authorized:   c.authorized,
		User:         c.user,
		SubAccount:   c.subAccount,
		EN1:          c.en1Hex,
		Subres:       c.subres,
		Connected:    c.since,
		BytesIn:      c.bytesIn.Load(),
		BytesOut:     c.bytesOut.Load(),
		LinesIn:      c.linesIn,
		LinesOut:     c.linesOut,
		BadLines:     c.badLines,
		FramesIn:     cmdMap(c.framesIn),
		FramesOut:    cmdMap(c.framesOut),
		Workers:      len(c.workers),
		Validated:    c.validated,
		SubmitIndex:  c.submitIdx,
		Accepted:     c.accepted,
		Rejected:     maps.Clone(c.rejected),
		Dropped:      c.dropped,
		Ignored:      c.ignored,
		Suppressed:   c.suppressed,
		RecentFrames: c.recent.hex(),
	}
	if c.configured {
		cs.VersionMask = codec.Hex32(c.verMask)
	}
	if c.sv2 != nil {
		cs.SV2 = true
		cs.FramesIn, cs.FramesOut = sv2Map(c.sv2.in), sv2Map(c.sv2.out)
		cs.Workers = len(c.sv2.channels)
	}
	if c.plain != nil {
		cs.Workers = 1
	}
	return cs
}

func (p *Pool) snapshotLocked() Stats {
	s := Stats{
		Time:    time.Now(),
		Addr:    p.addr,
		Conns:   make([]ConnStats, 0, len(p.conns)),
		Closed:  slices.Clone(p.closedCS),
		Workers: make(map[string]WorkerStats, len(p.records)),
		Events:  p.events.list(),
	}
	for i := range s.Closed {
		s.Closed[i].Rejected = maps.Clone(s.Closed[i].Rejected)
		s.Closed[i].FramesIn = maps.Clone(s.Closed[i].FramesIn)
		s.Closed[i].FramesOut = maps.Clone(s.Closed[i].FramesOut)
		s.Closed[i].RecentFrames = slices.Clone(s.Closed[i].RecentFrames)
	}
	t := &p.tot
	s.Totals = Totals{
		ConnsAccepted:     t.connsAccepted,
		ConnsRefused:      t.refused,
		ConnsClosed:       t.connsClosed,
		AgentConnsTotal:   t.agentConns,
		RegisteredWorkers: p.live,
		Accepted:          t.accepted,
		Rejected:          maps.Clone(t.rejected),
		Solved:            t.solved,
		Dropped:           t.dropped,
		Ignored:           t.ignored,
		JobsSent:          t.jobs,
		Blocks:            t.blocks,
		NotifiesSent:      t.notifies,
		SetDiffFrames:     t.setDiffFrames,
		Restarts:          t.restarts,
		BytesIn:           t.closedBytesIn,
		BytesOut:          t.closedBytesOut,
	}
	for _, c := range p.conns {
		cs := c.statsLocked()
		s.Conns = append(s.Conns, cs)
		s.Totals.Connections++
		if c.agent {
			s.Totals.AgentConns++
		}
		s.Totals.BytesIn += cs.BytesIn
		s.Totals.BytesOut += cs.BytesOut
	}
	slices.SortFunc(s.Conns, func(a, b ConnStats) int { return cmp.Compare(a.ID, b.ID) })
	for name, r := range p.records {
		ws := r.stats
		ws.Rejected = maps.Clone(r.stats.Rejected)
		ws.Sessions = len(r.sessions)
		ws.Online = ws.Sessions > 0
		s.Workers[name] = ws
	}
	s.SubAccounts = p.subAccountsLocked()
	if j := p.cur; j != nil {
		s.Job = JobInfo{ID: j.notify.JobID, Seq: j.seq, Clean: j.notify.Clean, PrevHash: j.prevHash, NTime: j.notify.NTime, Stamp: j.stamp}
	}
	return s
}

// fullStats is the snapshot plus TCP_INFO, for the file and HTTP outputs.
func (p *Pool) fullStats() Stats {
	s := p.Stats()
	s.TCP = p.TCPInfo()
	return s
}

// writeStatsFile writes the stats JSON atomically (temp file + rename), so
// that a reader never sees half a file.
func (p *Pool) writeStatsFile() error {
	s := p.fullStats()
	b, err := json.MarshalIndent(&s, "", "  ")
	if err != nil {
		return fmt.Errorf("poolsim: encode stats: %w", err)
	}
	path := p.cfg.StatsFile
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("poolsim: stats file: %w", err)
	}
	_, werr := tmp.Write(append(b, '\n'))
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("poolsim: write stats file %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("poolsim: stats file: %w", err)
	}
	return nil
}

func (p *Pool) statsFileLoop() {
	defer close(p.statsDone)
	t := time.NewTicker(p.cfg.StatsInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			if err := p.writeStatsFile(); err != nil {
				p.log.WithError(err).Warn("poolsim: stats file")
			}
		}
	}
}

// Handler serves the stats JSON at GET /stats.
func (p *Pool) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		s := p.fullStats()
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(&s); err != nil {
			p.log.WithError(err).Debug("poolsim: write stats response")
		}
	})
	return mux
}

// StatsAddr is the bound address of the stats HTTP server, or "" if none.
func (p *Pool) StatsAddr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.statsAddr
}

func (p *Pool) startHTTP(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("poolsim: stats listener on %s: %w", addr, err)
	}
	p.statsAddr = ln.Addr().String()
	p.http = &http.Server{Handler: p.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := p.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.log.WithError(err).Warn("poolsim: stats server")
		}
	}()
	return nil
}
