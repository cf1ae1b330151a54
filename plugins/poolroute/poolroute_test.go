package poolroute_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/plugins"
	"github.com/btcagent/btcagent/plugins/plugintest"
	"github.com/btcagent/btcagent/plugins/poolroute"
)

func build(t *testing.T, opts map[string]any) *plugins.Chain {
	t.Helper()
	return plugintest.Build(t, plugintest.Spec(poolroute.Name, false, opts))
}

func routeB(extra ...map[string]any) []map[string]any {
	return append([]map[string]any{{"name": "b", "pools": []string{"127.0.0.1:3334"}}}, extra...)
}

func TestRoutesDeclared(t *testing.T) {
	c := build(t, map[string]any{
		"split": map[string]int{"b": 1, "c": 1},
		"route": routeB(map[string]any{"name": "c", "pool_user": "farm-c", "pools": []string{"tls://pool.example.com:443", "stratum+tcp://10.0.0.1:1800"}}),
	})
	want := []msg.Route{
		{Name: "b", PoolUser: plugintest.PoolUser, Pools: []msg.PoolAddr{{Host: "127.0.0.1", Port: 3334, Protocol: "agent"}}},
		{Name: "c", PoolUser: "farm-c", Pools: []msg.PoolAddr{{Host: "pool.example.com", Port: 443, TLS: true, Protocol: "agent"}, {Host: "10.0.0.1", Port: 1800, Protocol: "agent"}}},
	}
	if got := c.Routes(); !reflect.DeepEqual(got, want) {
		t.Errorf("routes\n got %+v\nwant %+v", got, want)
	}
	if !c.HasRebalancers() {
		t.Error("pool-route must be consulted by the coordinator's rebalance ticks")
	}
}

func TestProvisionErrors(t *testing.T) {
	cases := []struct {
		opts map[string]any
		want string
	}{
		{map[string]any{}, "needs [[plugins.rule]] tables or a split"},
		{map[string]any{"split": map[string]int{"x": 1}}, `split: unknown route "x"`},
		{map[string]any{"split": map[string]int{"default": 0, "b": 0}, "route": routeB()}, "weights add up to 0"},
		{map[string]any{"split": map[string]int{"default": -1, "b": 2}, "route": routeB()}, `weight of "default" is negative`},
		{map[string]any{"split": map[string]int{"default": 1}, "route": []map[string]any{{"name": "default", "pools": []string{"h:1"}}}}, "reserved"},
		{map[string]any{"split": map[string]int{"default": 1}, "route": routeB(routeB()...)}, `name "b" is used twice`},
		{map[string]any{"split": map[string]int{"default": 1}, "route": []map[string]any{{"name": "b"}}}, "pools is empty"},
		{map[string]any{"split": map[string]int{"default": 1}, "route": []map[string]any{{"name": "b", "pools": []string{"h:0"}}}}, "port in 1..65535"},
		{map[string]any{"split": map[string]int{"default": 1}, "route": []map[string]any{{"name": "b", "pools": []string{"http://h:1"}}}}, `unknown scheme "http"`},
		{map[string]any{"rule": []map[string]any{{"route": "default"}}}, "rule[0]: needs worker or cidrs"},
		{map[string]any{"rule": []map[string]any{{"worker": "(", "route": "default"}}}, "rule[0]: worker: error parsing regexp"},
		{map[string]any{"rule": []map[string]any{{"cidrs": []string{"10.0.0.0/33"}, "route": "default"}}}, "rule[0]: cidrs"},
		{map[string]any{"rule": []map[string]any{{"worker": "a", "route": "nope"}}}, `rule[0]: unknown route "nope"`},
		{map[string]any{"split": map[string]int{"default": 1}, "tolerance": 0.5}, "tolerance = 0.5"},
		{map[string]any{"split": map[string]int{"default": 1}, "hold": "-1s"}, "hold = -1s"},
		{map[string]any{"split": map[string]int{"default": 1}, "match": "name"}, `match = "name"`},
		{map[string]any{"split": map[string]int{"default": 1}, "routes": []map[string]any{}}, `unknown key "routes" (did you mean "route"?)`},
	}
	for _, tc := range cases {
		_, err := plugintest.BuildErr(plugintest.Spec(poolroute.Name, false, tc.opts))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.opts, err, tc.want)
		}
	}
}

// farm is a fake coordinator: it places miners through the chain, applies
// the moves the chain asks for and reports loads like the real one.
type farm struct {
	c      *plugins.Chain
	rate   map[uint16]float64
	route  map[uint16]string
	remote map[uint16]netip.AddrPort
}

func newFarm(c *plugins.Chain) *farm {
	return &farm{c: c, rate: map[uint16]float64{}, route: map[uint16]string{}, remote: map[uint16]netip.AddrPort{}}
}

func (f *farm) join(sid uint16, rate float64) string {
	f.rate[sid] = rate
	f.remote[sid] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(sid >> 8), byte(sid)}), 4028)
	s := &msg.UpstreamSelecting{Info: f.info(sid)}
	f.c.OnSelect(s)
	f.route[sid] = s.Route
	return s.Route
}

func (f *farm) info(sid uint16) msg.MinerInfo {
	return msg.MinerInfo{SessionID: sid, Remote: f.remote[sid], User: fmt.Sprintf("john.m%d", sid)}
}

func (f *farm) leave(sid uint16) {
	info := f.info(sid)
	delete(f.rate, sid)
	delete(f.route, sid)
	f.c.OnMinerGone(&info)
}

func (f *farm) rebalance() []msg.RouteMove {
	var loads []msg.MinerLoad
	for sid, r := range f.rate {
		loads = append(loads, msg.MinerLoad{Info: f.info(sid), Route: f.route[sid], Hashrate: r})
	}
	moves := f.c.Rebalance(loads)
	for _, mv := range moves {
		f.route[mv.SessionID] = mv.Route
	}
	return moves
}

// deviation is the largest |share - weight| over the routes, as a fraction
// of the total hashrate.
func (f *farm) deviation(weights map[string]float64) float64 {
	sums, total := map[string]float64{}, 0.0
	for sid, r := range f.rate {
		sums[f.route[sid]] += r
		total += r
	}
	worst := 0.0
	for route, w := range weights {
		worst = math.Max(worst, math.Abs(sums[route]/total-w))
	}
	return worst
}

// Over random farms of mixed hashrates: a round never makes the split
// worse, lands within the tolerance when miners are small enough to allow
// it, and a second round on the same data moves nobody (no flapping).
func TestRebalanceConverges(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		c := build(t, map[string]any{
			"split": map[string]int{"default": 50, "b": 30, "c": 20}, "hold": "0s",
			"route": routeB(map[string]any{"name": "c", "pools": []string{"127.0.0.1:3335"}}),
		})
		f := newFarm(c)
		n := 20 + rng.IntN(200)
		for i := range n {
			f.join(uint16(i+1), 0)
		}
		// Estimates arrive: a mix of small and large machines (1 to 100).
		for sid := range f.rate {
			f.rate[sid] = math.Exp(rng.Float64() * math.Log(100))
		}
		weights := map[string]float64{"": 0.5, "b": 0.3, "c": 0.2}
		before := f.deviation(weights)
		moves := f.rebalance()
		after := f.deviation(weights)
		if after > before+1e-9 {
			t.Fatalf("trial %d: deviation grew from %.3f to %.3f", trial, before, after)
		}
		if n >= 100 && after > 0.02 {
			t.Errorf("trial %d: %d miners, deviation %.3f after %d moves, want <= 0.02", trial, n, after, len(moves))
		}
		if again := f.rebalance(); len(again) != 0 {
			t.Errorf("trial %d: second round on unchanged data moved %d miners", trial, len(again))
		}
		if before <= 0.02 && len(moves) != 0 {
			t.Errorf("trial %d: moved %d miners although the split was within tolerance", trial, len(moves))
		}
	}
}

// Weights are over hashrate: one big miner balances many small ones.
func TestWeightsAreHashrate(t *testing.T) {
	c := build(t, map[string]any{"split": map[string]int{"default": 50, "b": 50}, "hold": "0s", "route": routeB()})
	f := newFarm(c)
	for i := range 11 {
		f.join(uint16(i+1), 0)
	}
	f.rate[1] = 1000
	for sid := uint16(2); sid <= 11; sid++ {
		f.rate[sid] = 100
	}
	f.rebalance()
	if d := f.deviation(map[string]float64{"": 0.5, "b": 0.5}); d > 1e-9 {
		t.Fatalf("deviation %.3f; routes %v", d, f.route)
	}
	for sid := uint16(2); sid <= 11; sid++ {
		if f.route[sid] == f.route[1] {
			t.Fatalf("a small miner shares the big one's route: %v", f.route)
		}
	}
}

// New miners go where the gap is, counted at the average hashrate; miners
// that leave are forgotten (but not when their session id was reused).
func TestPlacementAndChurn(t *testing.T) {
	c := build(t, map[string]any{"split": map[string]int{"default": 75, "b": 25}, "hold": "1h", "route": routeB()})
	f := newFarm(c)
	for sid := uint16(1); sid <= 4; sid++ {
		f.join(sid, 0)
	}
	// Without estimates miners count alike: 3 on default, 1 on b (ties go
	// to the first route by name).
	if got := fmt.Sprint(f.route); got != `map[1: 2: 3:b 4:]` {
		t.Fatalf("count-based placement without estimates: %s", got)
	}
	f.rate = map[uint16]float64{1: 10, 2: 10, 3: 10, 4: 10}
	if moves := f.rebalance(); len(moves) != 0 {
		t.Fatalf("balanced farm, moves %v", moves)
	}
	// The b miner leaves; the next miner (counted as the average, 10) fills b.
	f.leave(3)
	if r := f.join(5, 0); r != "b" {
		t.Fatalf("new miner after a b miner left went to %q", r)
	}
	// A stale "gone" for a reused session id does not forget the new miner.
	stale := msg.MinerInfo{SessionID: 5, Remote: netip.MustParseAddrPort("192.0.2.9:1")}
	c.OnMinerGone(&stale)
	if r := f.join(6, 0); r != "" {
		t.Fatalf("b counted empty after a stale gone: miner 6 went to %q", r)
	}
}

// A moved miner is held: the next round leaves it alone even when moving it
// back would be the best move. Without a hold the same data moves it back.
func TestHold(t *testing.T) {
	for _, hold := range []string{"1h", "0s"} {
		c := build(t, map[string]any{"split": map[string]int{"default": 50, "b": 50}, "hold": hold, "route": routeB()})
		f := newFarm(c)
		for sid := uint16(1); sid <= 4; sid++ {
			f.join(sid, 0)
		}
		f.rate = map[uint16]float64{1: 40, 2: 10, 3: 10, 4: 40}
		f.route = map[uint16]string{1: "", 2: "b", 3: "", 4: ""} // 90 / 10
		first := f.rebalance()
		if len(first) != 1 || first[0].Route != "b" || f.rate[first[0].SessionID] != 40 {
			t.Fatalf("hold %s: first round %v, want one 40 moved to b", hold, first)
		}
		moved := first[0].SessionID
		// The other b miner grows: b is over by 40, and moving the 40 back
		// is the only move that helps.
		f.rate[2] = 90
		second := f.rebalance()
		back := len(second) == 1 && second[0].SessionID == moved
		if hold == "1h" && len(second) != 0 {
			t.Errorf("hold 1h: moves %v, want none (the only useful move is the held miner)", second)
		}
		if hold == "0s" && !back {
			t.Errorf("hold 0s: moves %v, want miner %d moved back", second, moved)
		}
	}
}

// Rules pin miners; the split only counts and moves the others.
func TestRulesPin(t *testing.T) {
	c := build(t, map[string]any{
		"split": map[string]int{"default": 50, "b": 50}, "hold": "0s", "route": routeB(),
		"rule": []map[string]any{{"worker": `^john\.m1$`, "route": "b"}},
	})
	f := newFarm(c)
	if r := f.join(1, 0); r != "b" {
		t.Fatalf("pinned miner went to %q", r)
	}
	f.join(2, 0)
	f.join(3, 0)
	f.rate = map[uint16]float64{1: 1000, 2: 10, 3: 10}
	for _, mv := range f.rebalance() {
		if mv.SessionID == 1 {
			t.Fatal("pinned miner moved")
		}
	}
	if f.route[2] == f.route[3] {
		t.Fatalf("unpinned miners not split 50/50 among themselves: %v", f.route)
	}
}
