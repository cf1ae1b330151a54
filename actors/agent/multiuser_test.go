package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/actors/wire"
	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/testenv"
	_ "github.com/btcagent/btcagent/plugins/all" // the legacy file turns share-check and asicboost-guard on
	"github.com/btcagent/btcagent/sim/minersim"
	"github.com/btcagent/btcagent/sim/poolsim"
)

// multiUserConfig is one multi-user listener on the given pools.
func multiUserConfig(t *testing.T, sub config.SubAccountOptions, pools ...string) *config.Config {
	t.Helper()
	cfg := testenv.Config(t, "", pools...)
	cfg.Listen[0].MultiUser = true
	cfg.Listen[0].SubAccounts = sub
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// subAccounts reads a listener's sub-accounts from its coordinator.
func subAccounts(t *testing.T, l *agent.Listener) map[string]wire.SubAccountState {
	t.Helper()
	s, err := l.Snapshot(5 * time.Second)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	out := map[string]wire.SubAccountState{}
	for _, sa := range s.SubAccounts {
		out[sa.Name] = sa
	}
	return out
}

// waitSubs polls the coordinator's snapshot (there is no event to await
// outside it) until cond holds, within the test timeout.
func waitSubs(t *testing.T, l *agent.Listener, what string, cond func(map[string]wire.SubAccountState) bool) map[string]wire.SubAccountState {
	t.Helper()
	deadline := time.Now().Add(testenv.Timeout)
	for {
		subs := subAccounts(t, l)
		if cond(subs) {
			return subs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; sub-accounts %+v", what, testenv.Timeout, subs)
		}
		time.Sleep(10 * time.Millisecond) // polling a bounded wait, as WaitReady does
	}
}

// Three sub-accounts of 50 hash-mode miners each on one multi-user
// listener: every share is accepted by the pool under the miner's own
// "<sub-account>.<worker>", each sub-account has its own agent links
// (authorizing as the sub-account, REGISTERing the worker part), and the
// coordinator's per-sub-account view adds up.
func TestMultiUserThreeSubAccounts(t *testing.T) {
	const perSub, shares, links = 50, 2, 2
	subs := []string{"alice", "bob", "carol"}
	pool := testenv.Pool(t, poolsim.Config{})
	cfg := multiUserConfig(t, config.SubAccountOptions{Connections: links, Max: 10, Grace: time.Minute}, pool.Addr())
	a := testenv.Agent(t, cfg, agent.Options{})
	var names []string
	for _, sub := range subs {
		for i := 1; i <= perSub; i++ {
			names = append(names, fmt.Sprintf("%s.rig%d", sub, i))
		}
	}
	miners := testenv.Miners(t, minersim.Config{Target: testenv.Addr(a), Names: names, Hash: true, HashThreads: 2, VersionRolling: true, MaxSharesPerMiner: shares})
	ctx := testenv.Ctx(t)
	total := int64(len(names) * shares)
	if err := miners.WaitFor(ctx, func(s *minersim.Summary) bool { return s.SharesAccepted+sumRejected(s) >= total }); err != nil {
		t.Fatalf("shares not answered: %v; summary %+v", err, miners.Stats())
	}
	if sum := miners.Stats(); sum.SharesAccepted != total || len(sum.SharesRejected) != 0 {
		t.Fatalf("miners: accepted %d of %d, rejected %v", sum.SharesAccepted, total, sum.SharesRejected)
	}
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.Accepted >= uint64(total) }); err != nil {
		t.Fatalf("pool accepted %d of %d", pool.Stats().Totals.Accepted, total)
	}
	st := pool.Stats()
	if len(st.Totals.Rejected) != 0 {
		t.Fatalf("pool rejected %v", st.Totals.Rejected)
	}
	for _, name := range names {
		sub, worker, _ := strings.Cut(name, ".")
		w := st.Workers[name]
		if w.SubAccount != sub || w.Worker != worker || !w.Agent || st.AcceptedFor(name) != shares {
			t.Fatalf("worker %s at the pool: %+v, accepted %d", name, w, st.AcceptedFor(name))
		}
	}
	if len(st.SubAccounts) != len(subs) {
		t.Fatalf("pool sub-accounts %v, want exactly %v", keys(st.SubAccounts), subs)
	}
	for _, sub := range subs {
		sa := st.SubAccounts[sub]
		if st.LinksFor(sub) != links || sa.AgentLinks != links || len(st.WorkersFor(sub)) != perSub {
			t.Fatalf("pool view of %s: %+v, workers %d", sub, sa, len(st.WorkersFor(sub)))
		}
	}
	got := subAccounts(t, a.Listeners()[0])
	for _, sub := range subs {
		sa := got[sub]
		if sa.Miners != perSub || sa.Total != links || sa.Ready != links || sa.Accepted != perSub*shares || sa.Hashrate <= 0 || !sa.IdleSince.IsZero() {
			t.Fatalf("agent view of %s: %+v", sub, sa)
		}
	}
	snap, err := a.Listeners()[0].Snapshot(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	placed := map[string]int{}
	for _, u := range snap.Upstreams {
		placed[u.Route] += u.Miners
	}
	for _, sub := range subs {
		if placed[sub] != perSub {
			t.Fatalf("miners placed per route %v", placed)
		}
	}
	if len(snap.Upstreams) != links*len(subs) {
		t.Fatalf("%d slots, want %d", len(snap.Upstreams), links*len(subs))
	}
}

// A sub-account keeps its links while it has a miner, and for the grace
// after its last miner left; then its links close, the other sub-accounts'
// links stay, and a miner coming back opens new ones.
func TestMultiUserGraceClosesLinks(t *testing.T) {
	const grace, links = 2 * time.Second, 2
	pool := testenv.Pool(t, poolsim.Config{})
	cfg := multiUserConfig(t, config.SubAccountOptions{Connections: links, Max: 10, Grace: grace}, pool.Addr())
	a := testenv.Agent(t, cfg, agent.Options{})
	l := a.Listeners()[0]
	addr := testenv.Addr(a)
	ctx := testenv.Ctx(t)

	testenv.Dial(t, addr).Login("erin.rig1", false)
	d1, d2 := testenv.Dial(t, addr), testenv.Dial(t, addr)
	d1.Login("dave.rig1", false)
	d2.Login("dave.rig2", false)
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool {
		return s.LinksFor("dave") == links && s.LinksFor("erin") == links && s.Workers["dave.rig2"].Online
	}); err != nil {
		t.Fatalf("links not up: %+v", pool.Stats().SubAccounts)
	}

	_ = d1.Conn().Close()
	waitSubs(t, l, "dave down to one miner", func(m map[string]wire.SubAccountState) bool { return m["dave"].Miners == 1 })
	if sa := subAccounts(t, l)["dave"]; !sa.IdleSince.IsZero() || sa.Total != links {
		t.Fatalf("dave with one miner left: %+v", sa)
	}
	_ = d2.Conn().Close()
	subs := waitSubs(t, l, "dave idle", func(m map[string]wire.SubAccountState) bool { return !m["dave"].IdleSince.IsZero() })
	idle := subs["dave"].IdleSince
	if time.Since(idle) < grace && subs["dave"].Total != links {
		t.Fatalf("dave's links went before its grace: %+v", subs["dave"])
	}
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.LinksFor("dave") == 0 }); err != nil {
		t.Fatalf("dave's links still open: %+v", pool.Stats().SubAccounts["dave"])
	}
	if waited := time.Since(idle); waited < grace {
		t.Fatalf("dave's links closed %v after its last miner, before the %v grace", waited, grace)
	}
	subs = waitSubs(t, l, "dave forgotten", func(m map[string]wire.SubAccountState) bool { _, ok := m["dave"]; return !ok })
	if sa := subs["erin"]; sa.Miners != 1 || sa.Ready != links {
		t.Fatalf("erin after dave closed: %+v", sa)
	}
	if st := pool.Stats(); st.LinksFor("erin") != links {
		t.Fatalf("erin at the pool: %+v", st.SubAccounts["erin"])
	}

	testenv.Dial(t, addr).Login("dave.rig1", false)
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool {
		return s.LinksFor("dave") == links && s.SubAccounts["dave"].LinksTotal == 2*links
	}); err != nil {
		t.Fatalf("dave's links not opened again: %+v", pool.Stats().SubAccounts["dave"])
	}
}

// authorizeErr sends mining.authorize and returns the error the agent
// answers with (code 0 and "" when it answers true).
func authorizeErr(t *testing.T, m *testenv.RawMiner, id int, user string) (codec.Status, string) {
	t.Helper()
	m.Send(`{"id":` + strconv.Itoa(id) + `,"method":"mining.authorize","params":["` + user + `","x"]}`)
	reply, _ := m.Until(10*time.Second, func(x testenv.Msg) bool { return string(x.ID) == strconv.Itoa(id) })
	if string(reply.Result) == "true" {
		return 0, ""
	}
	var e []any
	if err := json.Unmarshal(reply.Error, &e); err != nil || len(e) < 2 {
		t.Fatalf("authorize %s: %s", user, reply.Raw)
	}
	code, _ := e[0].(float64)
	text, _ := e[1].(string)
	return codec.Status(code), text
}

// The cap, the allow-list and the naming rules refuse a miner with the
// documented message (README, "Multi-user mode"), and the refused miner
// may try again on the same connection. A sub-account past the cap takes
// the place of one without miners, whose links close.
func TestMultiUserRefusals(t *testing.T) {
	pool := testenv.Pool(t, poolsim.Config{})
	cfg := multiUserConfig(t, config.SubAccountOptions{Connections: 1, Max: 2, Grace: time.Hour, Allow: []string{"alice", "bob"}, AllowPattern: "car[a-z]+"}, pool.Addr())
	a := testenv.Agent(t, cfg, agent.Options{})
	l := a.Listeners()[0]
	addr := testenv.Addr(a)
	ctx := testenv.Ctx(t)
	testenv.Dial(t, addr).Login("alice.rig1", false)
	bob := testenv.Dial(t, addr)
	bob.Login("bob.rig1", false)

	m := testenv.Dial(t, addr)
	m.Send(`{"id":1,"method":"mining.subscribe","params":["testminer/1.0"]}`)
	m.Until(10*time.Second, func(x testenv.Msg) bool { return string(x.ID) == "1" })
	cases := []struct {
		user string
		code codec.Status
		text string
	}{
		{"carol.rig1", codec.StatusUnauthorized, `sub-account "carol" cannot be added: this agent already serves its limit of 2 sub-accounts`},
		{"mallory.rig1", codec.StatusUnauthorized, `sub-account "mallory" is not allowed on this agent`},
		{"rig7", codec.StatusInvalidUsername, `worker name "rig7" has no sub-account: use <sub-account>.<worker>`},
		{"al ice.rig1", codec.StatusInvalidUsername, `sub-account "al ice" is invalid: use 1 to 64 letters, digits or - _ : | ^ /`},
	}
	for i, c := range cases {
		if code, text := authorizeErr(t, m, 10+i, c.user); code != c.code || text != c.text {
			t.Errorf("authorize %q: [%d %q], want [%d %q]", c.user, code, text, c.code, c.text)
		}
	}
	want := map[string]int64{"cap_reached": 1, "not_allowed": 1, "no_sub_account": 1, "invalid": 1}
	if got := l.Stats.Refused.Counts(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("refusals counted %v, want %v", got, want)
	}

	// bob's only miner leaves: bob keeps its links (an hour's grace) until
	// carol needs the room.
	_ = bob.Conn().Close()
	waitSubs(t, l, "bob idle", func(s map[string]wire.SubAccountState) bool { return !s["bob"].IdleSince.IsZero() })
	if code, text := authorizeErr(t, m, 20, "carol.rig1"); code != 0 {
		t.Fatalf("carol after bob left: [%d %q]", code, text)
	}
	m.Until(10*time.Second, func(x testenv.Msg) bool { return x.Method == "mining.notify" })
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool {
		return s.LinksFor("bob") == 0 && s.LinksFor("carol") == 1 && s.LinksFor("alice") == 1
	}); err != nil {
		t.Fatalf("eviction at the pool: %+v", pool.Stats().SubAccounts)
	}
	st := pool.Stats()
	for _, never := range []string{"mallory", "rig7", "al ice", ""} {
		if _, ok := st.SubAccounts[never]; ok {
			t.Errorf("the pool saw sub-account %q", never)
		}
	}
	subs := subAccounts(t, l)
	if _, ok := subs["bob"]; ok || len(subs) != 2 || subs["carol"].Miners != 1 || subs["alice"].Miners != 1 {
		t.Fatalf("sub-accounts after the eviction: %+v", subs)
	}
}

// The btccom Go agent's shipped agent_conf.default.json runs as it is,
// pool and listen ports aside: miners alice.rig1 and bob.rig1 land in two
// sub-accounts, each with the five links per sub-account the file asks for,
// and the file's own sub-account is never used.
func TestLegacyBtccomMultiUserConfig(t *testing.T) {
	orig, err := os.ReadFile("../../testdata/config/legacy/agent_conf_default.json")
	if err != nil {
		t.Fatal(err)
	}
	text := string(orig)
	rewrite := func(from, to string) {
		if strings.Count(text, from) != 1 {
			t.Fatalf("%q is not in the fixture exactly once", from)
		}
		text = strings.Replace(text, from, to, 1)
	}
	var pools []*poolsim.Pool
	for _, p := range []int{3334, 3335, 3336} {
		pool := testenv.Pool(t, poolsim.Config{})
		pools = append(pools, pool)
		_, port, _ := strings.Cut(pool.Addr(), ":")
		rewrite(`["127.0.0.1", `+strconv.Itoa(p)+`,`, `["127.0.0.1", `+port+`,`)
	}
	listen := testenv.Port(t)
	rewrite(`"agent_listen_port": 3333,`, `"agent_listen_port": `+strconv.Itoa(listen)+`,`)
	path := filepath.Join(t.TempDir(), "agent_conf.json")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.LoadLegacyJSON(path)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	a := testenv.Agent(t, cfg, agent.Options{})
	addr := "127.0.0.1:" + strconv.Itoa(listen)
	testenv.Dial(t, addr).Login("alice.rig1", false)
	testenv.Dial(t, addr).Login("bob.rig1", false)

	ctx, cancel := context.WithTimeout(context.Background(), testenv.Timeout)
	defer cancel()
	const perSub = 5 // advanced.pool_connection_number_per_subaccount
	if err := pools[0].WaitFor(ctx, func(s *poolsim.Stats) bool {
		return s.LinksFor("alice") == perSub && s.LinksFor("bob") == perSub && s.Workers["alice.rig1"].Online && s.Workers["bob.rig1"].Online
	}); err != nil {
		t.Fatalf("first pool: %+v", pools[0].Stats().SubAccounts)
	}
	st := pools[0].Stats()
	for _, name := range []string{"alice.rig1", "bob.rig1"} {
		sub, worker, _ := strings.Cut(name, ".")
		if w := st.Workers[name]; w.SubAccount != sub || w.Worker != worker || !w.Agent {
			t.Errorf("%s at the pool: %+v", name, w)
		}
	}
	if len(st.SubAccounts) != 2 {
		t.Errorf("pool sub-accounts %v, want alice and bob only", keys(st.SubAccounts))
	}
	subs := subAccounts(t, a.Listeners()[0])
	if len(subs) != 2 || subs["alice"].Miners != 1 || subs["bob"].Miners != 1 || subs["alice"].Total != perSub {
		t.Fatalf("agent sub-accounts %+v", subs)
	}
}

// A multi-user coordinator that panics is restarted: its miners stay
// connected, each says again which sub-account it works for, and the
// sub-accounts get new links from the new instance.
func TestMultiUserCoordinatorRestart(t *testing.T) {
	pool := testenv.Pool(t, poolsim.Config{})
	cfg := multiUserConfig(t, config.SubAccountOptions{Connections: 1, Max: 10, Grace: time.Minute}, pool.Addr())
	a := testenv.Agent(t, cfg, agent.Options{})
	l := a.Listeners()[0]
	ctx := testenv.Ctx(t)
	alice, bob := testenv.Dial(t, testenv.Addr(a)), testenv.Dial(t, testenv.Addr(a))
	alice.Login("alice.rig1", false)
	bob.Login("bob.rig1", false)
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.LinksFor("alice") == 1 && s.LinksFor("bob") == 1 }); err != nil {
		t.Fatalf("links not up: %+v", pool.Stats().SubAccounts)
	}

	a.System().Root.Send(l.Coordinator, &wire.UpstreamReady{Slot: 1 << 20}) // never started: the coordinator panics

	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool {
		return s.SubAccounts["alice"].LinksTotal == 2 && s.SubAccounts["bob"].LinksTotal == 2 &&
			s.LinksFor("alice") == 1 && s.LinksFor("bob") == 1 && s.Workers["alice.rig1"].Online && s.Workers["bob.rig1"].Online
	}); err != nil {
		t.Fatalf("sub-accounts not back on new links: %+v", pool.Stats().SubAccounts)
	}
	waitSubs(t, l, "miners placed again", func(s map[string]wire.SubAccountState) bool {
		return len(s) == 2 && s["alice"].Miners == 1 && s["alice"].Ready == 1 && s["bob"].Miners == 1 && s["bob"].Ready == 1
	})
	if n := l.Stats.MinersAuth.Load(); n != 2 {
		t.Fatalf("authorized miners counted %d after the restart, want 2", n)
	}
	// Both miners are still on their first connection: they get new work.
	alice.Until(10*time.Second, func(x testenv.Msg) bool { return x.Method == "mining.notify" })
	bob.Until(10*time.Second, func(x testenv.Msg) bool { return x.Method == "mining.notify" })
}

// Over Stratum pool links the pool sees the same names as btccom's agent
// would give it: "<sub-account>.<stratum_worker>" for the aggregated links
// of "stratum", "<sub-account>.<worker>" for each miner's own link of
// "stratum-per-miner".
func TestMultiUserStratumNames(t *testing.T) {
	for _, c := range []struct {
		protocol string
		want     []string
	}{
		{config.ProtocolStratum, []string{"alice.farm1", "bob.farm1"}},
		{config.ProtocolStratumPerMiner, []string{"alice.rig1", "bob.rig1"}},
	} {
		t.Run(c.protocol, func(t *testing.T) {
			pool := testenv.Pool(t, poolsim.Config{})
			cfg := multiUserConfig(t, config.SubAccountOptions{Connections: 1, Max: 10, Grace: time.Minute}, pool.Addr())
			cfg.Listen[0].Pools[0].Protocol = c.protocol
			cfg.Listen[0].StratumWorker = "farm1"
			a := testenv.Agent(t, cfg, agent.Options{})
			testenv.Dial(t, testenv.Addr(a)).Login("alice.rig1", false)
			testenv.Dial(t, testenv.Addr(a)).Login("bob.rig1", false)
			if err := pool.WaitFor(testenv.Ctx(t), func(s *poolsim.Stats) bool {
				return s.Workers[c.want[0]].Online && s.Workers[c.want[1]].Online
			}); err != nil {
				t.Fatalf("pool workers %v, want %v online", keys(pool.Stats().Workers), c.want)
			}
			st := pool.Stats()
			if len(st.SubAccounts) != 2 || st.SubAccounts["alice"].Links == 0 || st.SubAccounts["bob"].Links == 0 {
				t.Fatalf("pool sub-accounts %+v", st.SubAccounts)
			}
		})
	}
}
