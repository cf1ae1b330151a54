package plugintest

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/plugins"
)

// Epoch is the default "now" of replayed calls, so that golden files do not
// depend on the wall clock.
var Epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// DefaultMask is the version mask a replayed miner was granted unless the
// call says otherwise (btcpool's usual mask).
const DefaultMask = 0x1fffe000

// Replayer drives a chain with fixture lines, keeping what the core would
// keep between hook calls: each miner's identity, Scratch and route, and the
// jobs every miner has received, in order.
type Replayer struct {
	Chain  *plugins.Chain
	miners map[int]*miner
	jobs   map[string]*jobRec
	seq    int
	latest *jobRec
	clean  int // seq of the newest clean job
}

type miner struct {
	info    msg.MinerInfo
	scratch msg.Scratch
	route   string
}

type jobRec struct {
	job *msg.Job
	seq int
}

// NewReplayer starts a replay against chain.
func NewReplayer(chain *plugins.Chain) *Replayer {
	return &Replayer{Chain: chain, miners: map[int]*miner{}, jobs: map[string]*jobRec{}}
}

// call is one fixture line. Which fields matter depends on Hook.
type call struct {
	Hook string `json:"hook"`

	// connect, authorize, select, submit, gone: the miner (its session id).
	Miner    int    `json:"miner"`
	Remote   string `json:"remote"`   // "ip:port"
	User     string `json:"user"`     // authorize: the name as sent
	Password string `json:"password"` // authorize
	Agent    string `json:"agent"`    // authorize: user agent from subscribe

	// job: the job id later submits refer to, the notify and the upstream EN1.
	ID          string      `json:"id"`
	Notify      *notifyJSON `json:"notify"`
	UpstreamEN1 string      `json:"upstream_en1"`

	// submit
	Job   string   `json:"job"`
	Diff  *float64 `json:"diff"` // default 1
	EN1   string   `json:"en1"`  // the miner's EN1, default 0000<session id>
	EN2   string   `json:"en2"`
	NTime string   `json:"ntime"` // default the job's
	Nonce string   `json:"nonce"`
	Bits  string   `json:"bits"` // version bits; absent or zero means none
	Mask  *string  `json:"mask"` // granted mask, default 1fffe000; "" for none
	Now   string   `json:"now"`  // RFC 3339, default Epoch

	// select, rebalance
	Hashrate float64    `json:"hashrate"`
	Route    string     `json:"route"`
	Loads    []loadJSON `json:"loads"`

	// stats
	Miners   int   `json:"miners"`
	Accepted int64 `json:"accepted"`
	Rejected int64 `json:"rejected"`
}

type notifyJSON struct {
	PrevHash string   `json:"prevhash"`
	Coinb1   string   `json:"coinb1"`
	Coinb2   string   `json:"coinb2"`
	Branches []string `json:"branches"`
	Version  string   `json:"version"`
	NBits    string   `json:"nbits"`
	NTime    string   `json:"ntime"`
	Clean    bool     `json:"clean"`
}

type loadJSON struct {
	Miner    int     `json:"miner"`
	Route    *string `json:"route"` // default: where the replay last put the miner
	Hashrate float64 `json:"hashrate"`
}

// Step runs one fixture line and describes the outcome in one line.
func (r *Replayer) Step(line []byte) (string, error) {
	var c call
	d := json.NewDecoder(bytes.NewReader(line))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return "", fmt.Errorf("bad fixture line: %w", err)
	}
	switch c.Hook {
	case "connect":
		return r.connect(&c)
	case "authorize":
		return r.authorize(&c)
	case "job":
		return r.job(&c)
	case "submit":
		return r.submit(&c)
	case "select":
		return r.selectRoute(&c)
	case "rebalance":
		return r.rebalance(&c)
	case "gone":
		return r.gone(&c)
	case "stats":
		r.Chain.OnStats(&msg.StatsTick{Listener: Listener, Miners: c.Miners, Hashrate: c.Hashrate, Accepted: c.Accepted, Rejected: c.Rejected, At: Epoch})
		return "stats", nil
	}
	return "", fmt.Errorf("unknown hook %q (want connect, authorize, job, submit, select, rebalance, gone or stats)", c.Hook)
}

func parseRemote(s string) (netip.AddrPort, error) {
	if s == "" {
		return netip.MustParseAddrPort("192.0.2.1:40000"), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return ap, fmt.Errorf("remote %q: %w", s, err)
	}
	return ap, nil
}

func verdict(v msg.Verdict) string {
	switch v {
	case msg.Continue:
		return "continue"
	case msg.Reject:
		return "reject"
	case msg.Drop:
		return "drop"
	}
	return fmt.Sprintf("verdict(%d)", v)
}

func (r *Replayer) connect(c *call) (string, error) {
	ap, err := parseRemote(c.Remote)
	if err != nil {
		return "", err
	}
	m := &msg.MinerConnecting{Listener: Listener, Port: Port, Remote: ap}
	v := r.Chain.OnConnect(m)
	out := fmt.Sprintf("connect %s: %s", ap, verdict(v))
	if v != msg.Continue {
		out += fmt.Sprintf(" %q", m.Text)
	}
	return out, nil
}

func (r *Replayer) minerOf(id int) *miner {
	m := r.miners[id]
	if m == nil {
		m = &miner{info: msg.MinerInfo{SessionID: uint16(id), Listener: Listener, Port: Port}}
		m.info.Remote, _ = parseRemote("")
		r.miners[id] = m
	}
	return m
}

func (r *Replayer) authorize(c *call) (string, error) {
	m := r.minerOf(c.Miner)
	if c.Remote != "" {
		ap, err := parseRemote(c.Remote)
		if err != nil {
			return "", err
		}
		m.info.Remote = ap
	}
	if c.Agent != "" {
		m.info.UserAgent = c.Agent
	}
	a := &msg.MinerAuthorizing{Info: m.info, Password: c.Password, Scratch: &m.scratch}
	a.Info.User = c.User
	a.Info.Worker = codec.SplitWorker(c.User)
	v := r.Chain.OnAuthorize(a)
	out := fmt.Sprintf("authorize m%d %q: %s", c.Miner, c.User, verdict(v))
	switch v {
	case msg.Continue:
		// What the core registers at the pool, after its own filtering.
		_, worker := codec.FitRegister(m.info.UserAgent, a.Info.Worker)
		m.info.User, m.info.Worker = c.User, worker
		out += fmt.Sprintf(" worker=%q", worker)
	case msg.Reject:
		code := a.Code
		if code == 0 {
			code = codec.StatusUnauthorized
		}
		out += fmt.Sprintf(" %d %q", code, textOr(a.Text, code))
	}
	return out, nil
}

func textOr(text string, code codec.Status) string {
	if text == "" {
		return code.Text()
	}
	return text
}

func (r *Replayer) job(c *call) (string, error) {
	if c.ID == "" || c.Notify == nil {
		return "", fmt.Errorf("job needs id and notify")
	}
	n := &codec.Notify{
		JobID: c.ID, PrevHash: c.Notify.PrevHash, Coinb1: c.Notify.Coinb1, Coinb2: c.Notify.Coinb2,
		Branches: c.Notify.Branches, Version: c.Notify.Version, NBits: c.Notify.NBits, NTime: c.Notify.NTime, Clean: c.Notify.Clean,
	}
	hj, err := codec.NewHashJob(n, c.UpstreamEN1)
	if err != nil {
		return "", fmt.Errorf("job %s: %w", c.ID, err)
	}
	r.seq++
	j := &msg.Job{
		ID: c.ID, PoolID: c.ID, Gen: 1, Notify: n, UpstreamEN1: c.UpstreamEN1,
		NTime: n.NTimeValue(), Version: n.VersionValue(), Hash: hj, Clean: n.Clean,
		Received: Epoch.Add(time.Duration(r.seq) * time.Second),
	}
	rec := &jobRec{job: j, seq: r.seq}
	r.jobs[c.ID] = rec
	r.latest = rec
	if n.Clean {
		r.clean = r.seq
	}
	r.Chain.OnJob(&msg.JobArrived{Listener: Listener, Route: c.Route, Job: j})
	return fmt.Sprintf("job %s clean=%t", c.ID, n.Clean), nil
}

func hex32(s string, what string) (uint32, error) {
	v, ok := codec.ParseHex32([]byte(s))
	if !ok || len(s) == 0 || len(s) > 8 {
		return 0, fmt.Errorf("%s %q is not 1..8 hex digits", what, s)
	}
	return v, nil
}

func (r *Replayer) submit(c *call) (string, error) {
	m := r.minerOf(c.Miner)
	rec := r.jobs[c.Job]
	if rec == nil {
		return "", fmt.Errorf("submit on unknown job %q (the core answers 21 before any plugin)", c.Job)
	}
	h := &msg.ShareSubmitted{Info: &m.info, Job: rec.job, Difficulty: 1, Scratch: &m.scratch, Now: Epoch, VersionMask: DefaultMask}
	h.Latest = rec == r.latest
	h.StaleBlock = r.clean > rec.seq
	if c.Diff != nil {
		h.Difficulty = *c.Diff
	}
	h.MinerEN1 = [4]byte{0, 0, byte(m.info.SessionID >> 8), byte(m.info.SessionID)}
	if c.EN1 != "" {
		b, err := hex.DecodeString(c.EN1)
		if err != nil || len(b) != 4 {
			return "", fmt.Errorf("en1 %q is not 8 hex digits", c.EN1)
		}
		copy(h.MinerEN1[:], b)
	}
	var err error
	if len(c.EN2) != 8 {
		return "", fmt.Errorf("en2 %q is not 8 hex digits", c.EN2)
	}
	if h.ExtraNonce2, err = hex32(c.EN2, "en2"); err != nil {
		return "", err
	}
	h.NTime = rec.job.NTime
	if c.NTime != "" {
		if h.NTime, err = hex32(c.NTime, "ntime"); err != nil {
			return "", err
		}
	}
	if h.Nonce, err = hex32(c.Nonce, "nonce"); err != nil {
		return "", err
	}
	if c.Bits != "" {
		if h.VersionBits, err = hex32(c.Bits, "bits"); err != nil {
			return "", err
		}
		h.HasVersion = h.VersionBits != 0 // as the core does
	}
	if c.Mask != nil {
		h.VersionMask = 0 // "" means no version rolling granted
		if *c.Mask != "" {
			if h.VersionMask, err = hex32(*c.Mask, "mask"); err != nil {
				return "", err
			}
		}
	}
	if c.Now != "" {
		if h.Now, err = time.Parse(time.RFC3339Nano, c.Now); err != nil {
			return "", fmt.Errorf("now: %w", err)
		}
	}
	v := r.Chain.OnSubmit(h)
	out := fmt.Sprintf("submit m%d %s nonce=%s: %s", c.Miner, c.Job, c.Nonce, verdict(v))
	if v != msg.Continue {
		code := h.Code
		if code == 0 {
			code = codec.StatusRejectNoReason
		}
		out += fmt.Sprintf(" %d %q", code, textOr(h.Text, code))
	}
	if h.Reconnect {
		out += " +reconnect"
	}
	return out, nil
}

func (r *Replayer) selectRoute(c *call) (string, error) {
	m := r.minerOf(c.Miner)
	s := &msg.UpstreamSelecting{Info: m.info, Hashrate: c.Hashrate, Route: c.Route}
	v := r.Chain.OnSelect(s)
	m.route = s.Route
	return fmt.Sprintf("select m%d: %s route=%q", c.Miner, verdict(v), s.Route), nil
}

func (r *Replayer) rebalance(c *call) (string, error) {
	loads := make([]msg.MinerLoad, 0, len(c.Loads))
	for _, l := range c.Loads {
		m := r.minerOf(l.Miner)
		route := m.route
		if l.Route != nil {
			route = *l.Route
			m.route = route
		}
		loads = append(loads, msg.MinerLoad{Info: m.info, Route: route, Hashrate: l.Hashrate})
	}
	moves := r.Chain.Rebalance(loads)
	sort.Slice(moves, func(i, j int) bool { return moves[i].SessionID < moves[j].SessionID })
	parts := make([]string, 0, len(moves))
	for _, mv := range moves {
		if m, ok := r.miners[int(mv.SessionID)]; ok {
			m.route = mv.Route
		}
		parts = append(parts, fmt.Sprintf("m%d->%q", mv.SessionID, mv.Route))
	}
	if len(parts) == 0 {
		return "rebalance: no moves", nil
	}
	return "rebalance: " + strings.Join(parts, " "), nil
}

func (r *Replayer) gone(c *call) (string, error) {
	m, ok := r.miners[c.Miner]
	if !ok {
		return "", fmt.Errorf("gone: unknown miner %d", c.Miner)
	}
	r.Chain.OnMinerGone(&m.info)
	delete(r.miners, c.Miner)
	return fmt.Sprintf("gone m%d", c.Miner), nil
}
