package minersim

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/btcagent/btcagent/codec"
)

// The worked example of docs/SHARES.md: job2 with three
// branches, extranonce1 f000000f, nonce c3335d00 meets difficulty 0.001.
func exampleJob(t *testing.T) *codec.HashJob {
	t.Helper()
	n := &codec.Notify{
		JobID:    "job2",
		PrevHash: "1cda83a5689bf23f73ff4872cef822783a032748000320280000000000000000",
		Coinb1:   "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff180341d10c",
		Coinb2:   "0b2f737475622d706f6f6c2fffffffff01205fa012000000001976a91489abcdefabbaabbaabbaabbaabbaabbaabbaabba88ac00000000",
		Branches: []string{
			"c274d3bfdf81b006fd5cde9817ea7d9e72d7f39457b1c99bfd49b34b94430678",
			"5dd04923048d8b362264fedd346c51f9f7ac0c23f5603399d7f4bf3c61d362dc",
			"b83b91374da7b5eff6bf7b4d78f84a73ef446fdab144bf112806be3133fff915",
		},
		Version: "20000000", NBits: "1d00ffff", NTime: "6b07071e",
	}
	j, err := codec.NewHashJob(n, "")
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestGrinderWorkedExample(t *testing.T) {
	j := exampleJob(t)
	en1 := []byte{0xf0, 0, 0, 0x0f}
	en2 := []byte{0, 0, 0, 0}
	hdr := j.Header(en1, en2, 0x20000000, 0x6b07071e, 0)
	g, err := newGrinder()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.setHeader(&hdr); err != nil {
		t.Fatal(err)
	}
	const nonce = 0xc3335d00
	h := g.hash(nonce)
	if got, want := codec.DisplayHex(h), "0000033cbf676ef96a2eb5fef559278fcf22e3f6a348079e0ce122c4e2f6a280"; got != want {
		t.Fatalf("midstate hash %s, want %s", got, want)
	}
	// The midstate path agrees with the full computation for other nonces.
	for i := 0; i < 200; i++ {
		n := rand.Uint32()
		if g.hash(n) != j.Hash(en1, en2, 0x20000000, 0x6b07071e, n) {
			t.Fatalf("nonce %08x: midstate hash differs from codec.HashJob.Hash", n)
		}
	}
	target := codec.TargetFromDifficulty(0.001)
	got, found, done := g.search(nonce-1000, 2000, &target)
	if !found || got != nonce || done != 1001 {
		t.Errorf("search found %v nonce %08x after %d hashes, want %08x after 1001", found, got, done, uint32(nonce))
	}
	if _, found, done := g.search(nonce+1, 500, &target); found || done != 500 {
		t.Errorf("search past the share found %v after %d hashes", found, done)
	}
}

func TestDepositBits(t *testing.T) {
	const mask = 0x1fffe000
	if rollCombos(mask) != 1<<16 {
		t.Fatalf("combos %d", rollCombos(mask))
	}
	if got := depositBits(0b101, mask); got != 0x2000|0x8000 {
		t.Errorf("depositBits(5) = %08x", got)
	}
	if got := depositBits(0xffff, mask); got != mask {
		t.Errorf("depositBits(all) = %08x", got)
	}
	seen := map[uint32]bool{}
	for v := uint32(0); v < 1<<16; v++ {
		b := depositBits(v, mask)
		if b&^mask != 0 || seen[b] {
			t.Fatalf("depositBits(%d) = %08x: outside the mask or repeated", v, b)
		}
		seen[b] = true
	}
}

func TestWorkerName(t *testing.T) {
	cases := []struct {
		miners, i int
		want      string
	}{
		{50, 42, "john.w042"},
		{1, 0, "john.w000"},
		{1000, 999, "john.w999"},
		{1001, 5, "john.w0005"},
		{20000, 42, "john.w00042"},
	}
	for _, c := range cases {
		if got := WorkerName("john", "w", c.miners, c.i); got != c.want {
			t.Errorf("WorkerName(%d, %d) = %q, want %q", c.miners, c.i, got, c.want)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	h.record(-time.Millisecond) // clock skew counts as zero, not as garbage
	q, mx, n := h.quantiles(0.5, 0.99)
	if n != 1001 || mx != time.Millisecond {
		t.Fatalf("n %d max %v", n, mx)
	}
	near := func(got, want time.Duration) bool {
		d := float64(got-want) / float64(want)
		return d > -0.02 && d < 0.02
	}
	if !near(q[0], 500*time.Microsecond) || !near(q[1], 990*time.Microsecond) {
		t.Errorf("p50 %v p99 %v", q[0], q[1])
	}
	// Buckets are monotonic and each value maps back into its own bucket.
	prev := -1
	for v := uint64(0); v < 1<<40; v = v*9/8 + 1 {
		i := histIndex(v)
		if i < prev || i >= histBuckets || histIndex(histValue(i)) != i {
			t.Fatalf("value %d: bucket %d (prev %d) midpoint %d", v, i, prev, histValue(i))
		}
		prev = i
	}
	if histIndex(^uint64(0)) != histBuckets-1 {
		t.Errorf("largest value in bucket %d of %d", histIndex(^uint64(0)), histBuckets)
	}
	var empty histogram
	if q, mx, n := empty.quantiles(0.5); q[0] != 0 || mx != 0 || n != 0 {
		t.Errorf("empty histogram: %v %v %d", q, mx, n)
	}
}

func TestSchedulerOrder(t *testing.T) {
	sc := newScheduler(time.Now())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fired := make(chan int32, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc.run(ctx, func(ev event) { fired <- ev.miner })
	}()
	// Added latest first: each add is a new head and must wake the loop.
	sc.after(60*time.Millisecond, event{miner: 3})
	sc.after(40*time.Millisecond, event{miner: 2})
	sc.after(20*time.Millisecond, event{miner: 1})
	sc.after(0, event{miner: 0})
	deadline := time.After(5 * time.Second)
	for want := int32(0); want < 4; want++ {
		select {
		case got := <-fired:
			if got != want {
				t.Fatalf("fired %d, want %d", got, want)
			}
		case <-deadline:
			t.Fatalf("event %d never fired", want)
		}
	}
	if sc.len() != 0 {
		t.Errorf("%d events left", sc.len())
	}
	cancel()
	<-done
}

func TestHexStamp(t *testing.T) {
	at := time.Unix(1700000000, 123456789)
	coinb1 := string(AppendHexStamp([]byte("0100ff"), "5E11AB1E", at)) + "f000000f"
	got, ok := HexStamp("5e11ab1e")(coinb1)
	if !ok || !got.Equal(at) {
		t.Errorf("stamp %v %v, want %v", got, ok, at)
	}
	if _, ok := HexStamp("5e11ab1e")("0100ff5e11ab1e12"); ok {
		t.Errorf("a truncated stamp was accepted")
	}
}

func TestSummaryJSON(t *testing.T) {
	s := Summary{Miners: 2, FanoutP50: 1500 * time.Microsecond, SharesRejected: map[int]int64{23: 4},
		Jobs: []JobFanout{{JobID: "7", Miners: 2, Max: 2 * time.Millisecond}}}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["fanout_p50_ms"] != 1.5 || m["miners"] != 2.0 {
		t.Errorf("summary JSON %s", b)
	}
	if r, _ := m["shares_rejected"].(map[string]any); r["23"] != 4.0 {
		t.Errorf("rejects in JSON: %s", b)
	}
	if jobs, _ := m["jobs"].([]any); len(jobs) != 1 || jobs[0].(map[string]any)["max_ms"] != 2.0 {
		t.Errorf("jobs in JSON: %s", b)
	}
}

func TestConfigValidation(t *testing.T) {
	bad := []Config{
		{Miners: 1},
		{Target: "x:1"},
		{Target: "x:1", Miners: 1, Transport: "carrier-pigeon"},
		{Target: "x:1", Miners: 1, Jitter: 2},
		{Target: "x:1", Miners: 3, Names: []string{"a.1", "b.1"}},
	}
	for _, c := range bad {
		if _, err := Start(context.Background(), c); err == nil || !strings.HasPrefix(err.Error(), "minersim:") {
			t.Errorf("Start(%+v) = %v, want a minersim error", c, err)
		}
	}
	c, err := Config{Target: "stratum+tcp://h:1", Miners: 5}.withDefaults()
	if err != nil || c.Target != "h:1" || c.WorkerPrefix != "w" || c.Password != "x" || c.UserAgent != "cgminer/4.10.0" ||
		c.ShareInterval != 10*time.Second || c.Jitter != 0.2 || c.HashThreads != 1 || c.DialConcurrency != 5 {
		t.Errorf("defaults: %+v %v", c, err)
	}
	if c, err := (Config{Target: "h:1", Names: []string{"a.1", "b.1"}}).withDefaults(); err != nil || c.Miners != 2 {
		t.Errorf("Names without Miners: %d miners, %v", c.Miners, err)
	}
}

func TestWireHelpers(t *testing.T) {
	line := appendSubmit(nil, &submitParams{id: 7, worker: "ann.w001", job: "j1", en2: []byte{0, 1, 0xab, 0xff},
		ntime: 0x6b07071e, nonce: 0xc3335d00, bits: 0x2000, withBits: true})
	var r codec.Request
	if err := codec.ScanRequest(line[:len(line)-1], &r); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	sub, err := codec.ParseSubmit(&r, 4)
	if err != nil || string(r.ID) != "7" || sub.Nonce != 0xc3335d00 || sub.NTime != 0x6b07071e || sub.VersionBits != 0x2000 ||
		string(sub.EN2Hex) != "0001abff" || string(sub.JobID) != "j1" {
		t.Errorf("submit line %s parsed as %+v, %v", line, sub, err)
	}
	// Names needing escapes stay valid JSON (codec's ParseSubmit refuses
	// them, as the agent does, but the line must still scan).
	odd := appendSubmit(nil, &submitParams{id: 8, worker: "a\"b\n", job: "j1", en2: []byte{1}})
	if err := codec.ScanRequest(odd[:len(odd)-1], &r); err != nil {
		t.Fatalf("%s: %v", odd, err)
	}
	if w, _ := r.Param(0).String(); w != "a\"b\n" {
		t.Errorf("worker %q", w)
	}
	for raw, want := range map[string]int{
		`{"id":1,"result":null,"error":[23,"Low difficulty",null]}`: 23,
		`{"id":1,"result":null,"error":[ -3,"x"]}`:                  -3,
		`{"id":1,"result":null,"error":{"code":21,"message":"x"}}`:  21,
		`{"id":1,"result":null,"error":"nope"}`:                     -1,
	} {
		if err := codec.ScanRequest([]byte(raw), &r); err != nil {
			t.Fatal(err)
		}
		if got := errorCode(r.Error); got != want {
			t.Errorf("errorCode(%s) = %d, want %d", raw, got, want)
		}
	}
	if _, _, err := parseSubscribeResult([]byte(`[[],"",4]`)); err == nil {
		t.Errorf("empty extranonce1 accepted")
	}
	if _, _, err := parseSubscribeResult([]byte(`[[],"00",0]`)); err == nil {
		t.Errorf("extranonce2 size 0 accepted")
	}
	if en1, n, err := parseSubscribeResult([]byte(`[[["mining.notify","1"]],"0000abcd",8]`)); err != nil || n != 8 || len(en1) != 4 {
		t.Errorf("subscribe result: %x %d %v", en1, n, err)
	}
}

// TestChangesWakeOncePerWait: a notify closes the channel a waiter holds;
// notifies while nobody holds the new one leave it alone.
func TestChangesWakeOncePerWait(t *testing.T) {
	c := newChanges()
	c.notify()
	ch := c.wait()
	select {
	case <-ch:
		t.Fatal("closed without waiters")
	default:
	}
	c.waiters.Add(1)
	c.notify()
	select {
	case <-ch:
	default:
		t.Fatal("a notify did not wake the waiter")
	}
	c.mu.Lock()
	next := c.ch
	c.mu.Unlock()
	c.notify()
	c.notify()
	if got := c.wait(); got != next {
		t.Fatal("notifies replaced a channel nobody held")
	}
	c.notify()
	select {
	case <-next:
	default:
		t.Fatal("a notify did not wake the second wait")
	}
}

// TestJobRingInternsAndEvicts: a job seen again is the same entry (one id
// string, one stamp parse), a job id with another coinb1 is another job, and
// the ring forgets the oldest once full.
func TestJobRingInternsAndEvicts(t *testing.T) {
	var r jobRing
	t0 := time.Unix(1700000000, 0)
	parses := 0
	stamp := func(string) (time.Time, bool) { parses++; return t0, true }
	at := func(d time.Duration) arrival { return arrival{now: t0.Add(d)} }
	js := r.seen([]byte("a"), []byte("c1"), at(time.Millisecond), false, stamp)
	id1 := js.id
	if js.stamped || js.kernelOK || id1 != "a" {
		t.Fatalf("first sight: id %q sampled %v kernel %v", id1, js.stamped, js.kernelOK)
	}
	js = r.seen([]byte("a"), []byte("c1"), at(3*time.Millisecond), true, stamp)
	if !js.stamped || js.lat != 3*time.Millisecond || js.kernelOK || parses != 1 || unsafe.StringData(id1) != unsafe.StringData(js.id) {
		t.Errorf("second sight: sampled %v latency %v kernel %v, %d stamp parses, id interned %v", js.stamped, js.lat, js.kernelOK, parses, unsafe.StringData(id1) == unsafe.StringData(js.id))
	}
	// A read the kernel stamped: both latencies, and the job's two maxima.
	k := arrival{now: t0.Add(9 * time.Millisecond), kernel: t0.Add(2 * time.Millisecond).UnixNano()}
	js = r.seen([]byte("a"), []byte("c1"), k, true, stamp)
	if !js.stamped || !js.kernelOK || js.lat != 9*time.Millisecond || js.kernelLat != 2*time.Millisecond {
		t.Errorf("stamped read: sampled %v %v, latency %v, kernel latency %v", js.stamped, js.kernelOK, js.lat, js.kernelLat)
	}
	if j := r.snapshot()[0]; j.Max != 9*time.Millisecond || j.KernelMax != 2*time.Millisecond || j.Miners != 3 {
		t.Errorf("job after three sights: max %v, kernel max %v, miners %d", j.Max, j.KernelMax, j.Miners)
	}
	r.seen([]byte("a"), []byte("c2"), at(0), true, stamp)
	for i := range jobRingSize - 1 {
		r.seen([]byte(fmt.Sprint("j", i)), []byte("c"), at(0), true, stamp)
	}
	jobs := r.snapshot()
	if len(jobs) != jobRingSize || jobs[0].JobID != "a" || jobs[0].Miners != 1 || jobs[len(jobs)-1].JobID != fmt.Sprint("j", jobRingSize-2) {
		t.Fatalf("ring after %d jobs: %d entries, oldest %+v", jobRingSize+1, len(jobs), jobs[0])
	}
	parses = 0
	if r.seen([]byte("a"), []byte("c1"), at(0), true, stamp); parses != 1 {
		t.Errorf("evicted job found again without a new entry")
	}
}
