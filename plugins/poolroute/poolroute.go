// Package poolroute is the "pool-route" plugin: it declares extra routes
// (a pool user with its own failover list of pools) and decides which route
// each miner works on — by worker-name regex, by source address, or by a
// hashrate split that it keeps in balance as hashrates settle and miners come
// and go.
//
//	[[plugins]]
//	name = "pool-route"
//	split = {default = 70, backup = 30}   # percent of estimated hashrate
//	# tolerance = 0.02   # rebalance when a route is off by more than 2 % of the total
//	# hold = "5m"        # a moved miner stays put at least this long
//
//	  [[plugins.route]]
//	  name = "backup"
//	  pool_user = "farm-b"                 # default: the listener's pool_user
//	  pools = ["pool-b.example.com:1800", "tls://pool-b.example.com:443"]
//
//	  [[plugins.rule]]                     # first matching rule wins; matched miners are never moved
//	  worker = '^john\.rack7-'             # RE2 on the name the miner sent (match = "worker": the registered name)
//	  route = "backup"
//
//	  [[plugins.rule]]
//	  cidrs = ["10.7.0.0/16"]
//	  route = "default"
//
// "default" names the listener's own pool_user and [[listen.pool]] list.
//
// The split is over hashrate, not miner counts. A new miner goes to the route
// furthest below its share, counted with the average hashrate of the known
// miners (its own is not known yet). Every rebalance interval the
// coordinator reports each placed miner's estimated hashrate; when some route
// is more than `tolerance` of the total away from its share, the plugin moves
// the miners that close the gap best — the fewest moves, greedily — until
// every route is within half the tolerance. The two thresholds and `hold`
// keep estimate noise from moving miners back and forth.
package poolroute

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/plugins"
	"github.com/btcagent/btcagent/plugins/allowlist"
	"github.com/sirupsen/logrus"
)

// Name is the plugin's registry name.
const Name = "pool-route"

// DefaultRoute is how the config names the listener's own route (msg.Route
// name ""); it cannot be declared.
const DefaultRoute = "default"

// Defaults.
const (
	DefaultTolerance = 0.02
	DefaultHold      = 5 * time.Minute
)

// Values of the match option.
const (
	MatchUser   = "user"
	MatchWorker = "worker"
)

func init() {
	plugins.Register(plugins.Info{
		Name:        Name,
		Description: "routes miners to extra pool users/pools by worker regex, source CIDR or a hashrate split",
		New:         func() plugins.Plugin { return new(PoolRoute) },
	})
}

// PoolRoute is the plugin and its options.
type PoolRoute struct {
	Route     []Route        `toml:"route"` // [[plugins.route]] tables
	Rule      []Rule         `toml:"rule"`  // [[plugins.rule]] tables, first match wins
	Split     map[string]int `toml:"split"`
	Match     string         `toml:"match"`     // what Rule.Worker is matched against: "user" (default) or "worker"
	Tolerance float64        `toml:"tolerance"` // fraction of the total hashrate; default 0.02
	Hold      *time.Duration `toml:"hold"`      // default 5m; "0s" allows a miner to move every round

	routes []msg.Route
	rules  []rule
	split  []weight // sorted by route name
	hold   time.Duration
	log    logrus.FieldLogger
	clock  func() time.Time

	mu     sync.Mutex
	miners map[uint16]*placed // miners the split manages, by session id
}

// Route is one [[plugins.route]] table.
type Route struct {
	Name     string   `toml:"name"`
	PoolUser string   `toml:"pool_user"`
	Pools    []string `toml:"pools"` // "host:port", "tls://host:port" (also stratum+tcp://, stratum+ssl://)
}

// Rule is one [[plugins.rule]] table: a miner matching every condition given
// goes to Route.
type Rule struct {
	Worker string   `toml:"worker"`
	CIDRs  []string `toml:"cidrs"`
	Route  string   `toml:"route"`
}

type rule struct {
	re       *regexp.Regexp
	prefixes []netip.Prefix
	route    string
}

type weight struct {
	route string
	frac  float64
}

// placed is what the split knows of a miner between rebalance rounds.
type placed struct {
	route    string
	hashrate float64 // H/s, 0 while unknown
	remote   netip.AddrPort
	movedAt  time.Time // last move by the rebalancer (zero: never moved)
	fresh    bool      // placed by OnSelect since the last round
}

var (
	_ plugins.Provisioner   = (*PoolRoute)(nil)
	_ plugins.RouteProvider = (*PoolRoute)(nil)
	_ plugins.SelectHook    = (*PoolRoute)(nil)
	_ plugins.Rebalancer    = (*PoolRoute)(nil)
	_ plugins.MinerGoneHook = (*PoolRoute)(nil)
)

// PluginName implements plugins.Plugin.
func (*PoolRoute) PluginName() string { return Name }

// Provision validates routes, rules and split.
func (p *PoolRoute) Provision(env plugins.Env) error {
	p.log, p.clock = env.Log, time.Now
	p.miners = map[uint16]*placed{}
	switch {
	case p.Tolerance == 0:
		p.Tolerance = DefaultTolerance
	case p.Tolerance < 0 || p.Tolerance >= 0.5:
		return fmt.Errorf("tolerance = %g: want a fraction in (0, 0.5)", p.Tolerance)
	}
	p.hold = DefaultHold
	if p.Hold != nil {
		if *p.Hold < 0 {
			return fmt.Errorf("hold = %s: must not be negative", *p.Hold)
		}
		p.hold = *p.Hold
	}
	switch p.Match {
	case "":
		p.Match = MatchUser
	case MatchUser, MatchWorker:
	default:
		return fmt.Errorf("match = %q: want %q or %q", p.Match, MatchUser, MatchWorker)
	}
	known := map[string]string{DefaultRoute: ""}
	for i, r := range p.Route {
		mr, err := parseRoute(r, env.PoolUser)
		if err != nil {
			return fmt.Errorf("route[%d]: %w", i, err)
		}
		if _, dup := known[r.Name]; dup {
			return fmt.Errorf("route[%d]: name %q is used twice (%q is the listener's own pools)", i, r.Name, DefaultRoute)
		}
		known[r.Name] = r.Name
		p.routes = append(p.routes, mr)
	}
	resolve := func(name string) (string, error) {
		r, ok := known[name]
		if !ok {
			return "", fmt.Errorf("unknown route %q (declare it in a [[plugins.route]] table, or use %q)", name, DefaultRoute)
		}
		return r, nil
	}
	for i, r := range p.Rule {
		var cr rule
		var err error
		if cr.route, err = resolve(r.Route); err != nil {
			return fmt.Errorf("rule[%d]: %w", i, err)
		}
		if r.Worker == "" && len(r.CIDRs) == 0 {
			return fmt.Errorf("rule[%d]: needs worker or cidrs", i)
		}
		if r.Worker != "" {
			if cr.re, err = regexp.Compile(r.Worker); err != nil {
				return fmt.Errorf("rule[%d]: worker: %w", i, err)
			}
		}
		if cr.prefixes, err = allowlist.ParsePrefixes(r.CIDRs); err != nil {
			return fmt.Errorf("rule[%d]: cidrs: %w", i, err)
		}
		p.rules = append(p.rules, cr)
	}
	total := 0
	for name, w := range p.Split {
		r, err := resolve(name)
		if err != nil {
			return fmt.Errorf("split: %w", err)
		}
		if w < 0 {
			return fmt.Errorf("split: weight of %q is negative", name)
		}
		total += w
		p.split = append(p.split, weight{route: r, frac: float64(w)})
	}
	if len(p.Split) > 0 && total == 0 {
		return fmt.Errorf("split: the weights add up to 0")
	}
	for i := range p.split {
		p.split[i].frac /= float64(total)
	}
	sort.Slice(p.split, func(i, j int) bool { return p.split[i].route < p.split[j].route })
	if len(p.rules) == 0 && len(p.split) == 0 {
		return fmt.Errorf("needs [[plugins.rule]] tables or a split: otherwise every miner stays on the listener's pools")
	}
	return nil
}

// parseRoute turns a route table into the route the coordinator dials.
func parseRoute(r Route, listenerUser string) (msg.Route, error) {
	if r.Name == "" {
		return msg.Route{}, fmt.Errorf("name is required")
	}
	if r.Name == DefaultRoute {
		return msg.Route{}, fmt.Errorf("name %q is reserved for the listener's own pools", DefaultRoute)
	}
	if len(r.Pools) == 0 {
		return msg.Route{}, fmt.Errorf("route %q: pools is empty", r.Name)
	}
	out := msg.Route{Name: r.Name, PoolUser: r.PoolUser}
	if out.PoolUser == "" {
		out.PoolUser = listenerUser
	}
	for i, s := range r.Pools {
		a, err := ParsePool(s)
		if err != nil {
			return msg.Route{}, fmt.Errorf("route %q: pools[%d]: %w", r.Name, i, err)
		}
		out.Pools = append(out.Pools, a)
	}
	return out, nil
}

// ParsePool reads "host:port" with an optional scheme: tls:// or
// stratum+ssl:// for TLS, stratum+tcp:// for plain TCP. Pools speak the
// BTCAgent protocol.
func ParsePool(s string) (msg.PoolAddr, error) {
	var a msg.PoolAddr
	rest := s
	if scheme, after, ok := strings.Cut(s, "://"); ok {
		switch scheme {
		case "tls", "stratum+ssl":
			a.TLS = true
		case "tcp", "stratum+tcp":
		default:
			return a, fmt.Errorf("%q: unknown scheme %q (want tls:// or stratum+tcp://)", s, scheme)
		}
		rest = after
	}
	host, port, err := net.SplitHostPort(rest)
	if err != nil {
		return a, fmt.Errorf("%q: %w", s, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || host == "" {
		return a, fmt.Errorf("%q: want host:port with a port in 1..65535", s)
	}
	a.Host, a.Port, a.Protocol = host, n, "agent"
	return a, nil
}

// Routes implements plugins.RouteProvider.
func (p *PoolRoute) Routes() []msg.Route { return p.routes }

// ruleRoute returns the route of the first rule that matches the miner.
func (p *PoolRoute) ruleRoute(info *msg.MinerInfo) (string, bool) {
	name := info.User
	if p.Match == MatchWorker {
		name = info.Worker
	}
	for i := range p.rules {
		r := &p.rules[i]
		if r.re != nil && !r.re.MatchString(name) {
			continue
		}
		if len(r.prefixes) > 0 && !allowlist.Contains(r.prefixes, info.Remote.Addr()) {
			continue
		}
		return r.route, true
	}
	return "", false
}

func (p *PoolRoute) inSplit(route string) bool {
	for _, w := range p.split {
		if w.route == route {
			return true
		}
	}
	return false
}

// OnSelect places a new miner: by rule, else by the split. A route an
// earlier plugin chose is kept.
func (p *PoolRoute) OnSelect(m *msg.UpstreamSelecting) msg.Verdict {
	if m.Route != "" {
		return msg.Continue
	}
	if r, ok := p.ruleRoute(&m.Info); ok {
		m.Route = r
		return msg.Continue
	}
	if len(p.split) == 0 {
		return msg.Continue
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	sums, total, avg := p.sumsLocked()
	h := m.Hashrate
	if h <= 0 {
		h = avg
	}
	best, bestGap := "", math.Inf(-1)
	for _, w := range p.split {
		if gap := w.frac*(total+h) - sums[w.route]; gap > bestGap {
			best, bestGap = w.route, gap
		}
	}
	m.Route = best
	// Placement does not start the hold: the first estimate may well show
	// the average was wrong, and the next round should be free to fix that.
	p.miners[m.Info.SessionID] = &placed{route: best, hashrate: m.Hashrate, remote: m.Info.Remote, fresh: true}
	return msg.Continue
}

// sumsLocked returns each route's estimated hashrate, the total and the
// stand-in for miners without an estimate: the average of those with one
// (1 when none has one, so that miners then count equally).
func (p *PoolRoute) sumsLocked() (map[string]float64, float64, float64) {
	var known float64
	n := 0
	for _, m := range p.miners {
		if m.hashrate > 0 {
			known += m.hashrate
			n++
		}
	}
	avg := 1.0
	if n > 0 {
		avg = known / float64(n)
	}
	sums := make(map[string]float64, len(p.split))
	total := 0.0
	for _, m := range p.miners {
		h := m.hashrate
		if h <= 0 {
			h = avg
		}
		sums[m.route] += h
		total += h
	}
	return sums, total, avg
}

// OnMinerGone forgets a miner. The remote address guards against a session
// id that was already reused by a newer miner.
func (p *PoolRoute) OnMinerGone(info *msg.MinerInfo) {
	if len(p.split) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if m, ok := p.miners[info.SessionID]; ok && m.remote == info.Remote {
		delete(p.miners, info.SessionID)
	}
}

// Rebalance implements plugins.Rebalancer: loads (every placed miner, with
// its hashrate estimate) replace what the plugin knew, then miners are moved
// if the split is off by more than the tolerance.
func (p *PoolRoute) Rebalance(loads []msg.MinerLoad) []msg.RouteMove {
	if len(p.split) == 0 {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.clock()
	next := make(map[uint16]*placed, len(loads))
	for i := range loads {
		l := &loads[i]
		if !p.inSplit(l.Route) {
			continue
		}
		if _, pinned := p.ruleRoute(&l.Info); pinned {
			continue
		}
		m := &placed{route: l.Route, hashrate: l.Hashrate, remote: l.Info.Remote}
		if old, ok := p.miners[l.Info.SessionID]; ok && old.remote == m.remote {
			m.movedAt = old.movedAt
		}
		next[l.Info.SessionID] = m
	}
	// A miner placed since the last round but not attached yet (its route's
	// link is not ready) still counts once, so that new miners are not all
	// sent to that route meanwhile.
	for sid, m := range p.miners {
		if _, ok := next[sid]; !ok && m.fresh {
			m.fresh = false
			next[sid] = m
		}
	}
	p.miners = next
	moves := p.balanceLocked(now)
	if len(moves) > 0 && p.log != nil {
		p.log.WithFields(logrus.Fields{"moves": len(moves), "miners": len(p.miners)}).Info("hashrate split rebalanced")
	}
	return moves
}

// balanceLocked computes the moves: while some route is off by more than
// the goal, move the one miner whose move shrinks the total deviation most.
func (p *PoolRoute) balanceLocked(now time.Time) []msg.RouteMove {
	_, total, avg := p.sumsLocked()
	if total <= 0 {
		return nil
	}
	dev := make(map[string]float64, len(p.split))
	for _, w := range p.split {
		dev[w.route] = -w.frac * total
	}
	sids := make([]uint16, 0, len(p.miners))
	for sid, m := range p.miners {
		sids = append(sids, sid)
		dev[m.route] += rate(m, avg)
	}
	sort.Slice(sids, func(i, j int) bool { return sids[i] < sids[j] })
	worst := func() float64 {
		w := 0.0
		for _, d := range dev {
			w = max(w, math.Abs(d))
		}
		return w
	}
	if worst() <= p.Tolerance*total {
		return nil
	}
	goal := p.Tolerance * total / 2
	var moves []msg.RouteMove
	moved := map[uint16]bool{}
	for worst() > goal {
		bestGain, bestSID, bestTo := 1e-9*total, uint16(0), ""
		found := false
		for _, sid := range sids {
			m := p.miners[sid]
			from := m.route
			if moved[sid] || dev[from] <= 0 || (p.hold > 0 && !m.movedAt.IsZero() && now.Sub(m.movedAt) < p.hold) {
				continue
			}
			h := rate(m, avg)
			for _, w := range p.split {
				to := w.route
				if to == from || dev[to] >= 0 {
					continue
				}
				gain := math.Abs(dev[from]) + math.Abs(dev[to]) - math.Abs(dev[from]-h) - math.Abs(dev[to]+h)
				if gain > bestGain {
					bestGain, bestSID, bestTo, found = gain, sid, to, true
				}
			}
		}
		if !found {
			break
		}
		m := p.miners[bestSID]
		h := rate(m, avg)
		dev[m.route] -= h
		dev[bestTo] += h
		m.route, m.movedAt = bestTo, now
		moved[bestSID] = true
		moves = append(moves, msg.RouteMove{SessionID: bestSID, Route: bestTo})
	}
	return moves
}

func rate(m *placed, avg float64) float64 {
	if m.hashrate > 0 {
		return m.hashrate
	}
	return avg
}
