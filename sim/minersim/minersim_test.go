package minersim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcagent/btcagent/codec"
)

// transports are all the socket layers; the tests that exercise connects,
// closes and reads run on each.
var transports = []string{TransportNetio, TransportNbio, TransportGoroutine}

// eachTransport runs test once per transport.
func eachTransport(t *testing.T, test func(t *testing.T, tr string)) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) { test(t, tr) })
	}
}

func TestFastModeFiftyMiners(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			// Reject about a quarter of the shares so per-code counting is exercised.
			srv := newTestServer(t, func(s *testServer) {
				s.verdict = func(sub *codec.Submit) codec.Status {
					if sub.Nonce%4 == 0 {
						return codec.StatusLowDifficulty
					}
					return codec.StatusAccept
				}
			})
			const miners, perMiner = 50, 4
			sim := startSim(t, Config{
				Target: srv.addr(), Miners: miners, User: "john", Transport: tr,
				ShareInterval: 20 * time.Millisecond, MaxSharesPerMiner: perMiner,
			})
			waitSim(t, sim, "all shares answered", func(s *Summary) bool {
				return s.SharesSent == miners*perMiner && s.SharesUnanswered == 0
			})
			sum := sim.Stats()
			if sum.Connected != miners || sum.Subscribed != miners || sum.Authorized != miners {
				t.Errorf("gauges: connected %d subscribed %d authorized %d, want %d each",
					sum.Connected, sum.Subscribed, sum.Authorized, miners)
			}
			final := sim.Stop()

			srv.mu.Lock()
			defer srv.mu.Unlock()
			total := 0
			for i := 0; i < miners; i++ {
				name := fmt.Sprintf("john.w%03d", i)
				if srv.submits[name] != perMiner {
					t.Errorf("server saw %d submits from %s, want %d", srv.submits[name], name, perMiner)
				}
				total += srv.submits[name]
			}
			if total != miners*perMiner || len(srv.submits) != miners {
				t.Errorf("server saw %d submits from %d workers, want %d from %d", total, len(srv.submits), miners*perMiner, miners)
			}
			if final.SharesSent != int64(total) || final.SharesAccepted != int64(srv.accepted) {
				t.Errorf("summary sent %d accepted %d; server got %d accepted %d",
					final.SharesSent, final.SharesAccepted, total, srv.accepted)
			}
			if srv.rejected[23] == 0 || final.SharesRejected[23] != int64(srv.rejected[23]) || len(final.SharesRejected) != 1 {
				t.Errorf("rejects: summary %v, server %v", final.SharesRejected, srv.rejected)
			}
			if final.SharesUnanswered != 0 || final.Disconnects != 0 || final.Reconnects != 0 {
				t.Errorf("unanswered %d disconnects %d reconnects %d, want 0", final.SharesUnanswered, final.Disconnects, final.Reconnects)
			}
			if final.Notifies < miners || final.SubmitP50 <= 0 || final.SubmitP99 < final.SubmitP50 {
				t.Errorf("notifies %d, submit p50 %v p99 %v", final.Notifies, final.SubmitP50, final.SubmitP99)
			}
		})
	}
}

func TestMinerViewAfterHandshake(t *testing.T) {
	srv := newTestServer(t)
	sim := startSim(t, Config{Target: srv.addr(), Miners: 3, User: "ann", WorkerPrefix: "rig", ShareInterval: time.Hour})
	waitSim(t, sim, "authorized", func(s *Summary) bool { return s.Authorized == 3 && s.Notifies == 3 })
	en1s := map[string]bool{}
	for i := 0; i < 3; i++ {
		v := sim.Miner(i)
		if v.Worker != fmt.Sprintf("ann.rig%03d", i) || !v.Connected || !v.Subscribed || !v.Authorized {
			t.Errorf("miner %d: %+v", i, v)
		}
		if len(v.ExtraNonce1) != 8 || v.ExtraNonce2Size != 4 || v.JobID != "1" || v.Difficulty != 1 || v.JobsSeen != 1 {
			t.Errorf("miner %d: en1 %q en2size %d job %q diff %g jobs %d", i, v.ExtraNonce1, v.ExtraNonce2Size, v.JobID, v.Difficulty, v.JobsSeen)
		}
		en1s[v.ExtraNonce1] = true
	}
	if len(en1s) != 3 {
		t.Errorf("extranonce1 values not per connection: %v", en1s)
	}
	if v := sim.Miner(3); v.LastError == "" {
		t.Errorf("Miner(3) of 3 should report an error, got %+v", v)
	}
}

func TestHashModeRealShares(t *testing.T) {
	for _, rolling := range []bool{false, true} {
		t.Run(fmt.Sprintf("rolling=%v", rolling), func(t *testing.T) {
			const diff = 0.00002 // ~86k hashes per share
			srv := newTestServer(t, func(s *testServer) { s.validate, s.diff = true, diff })
			const miners, perMiner = 4, 3
			sim := startSim(t, Config{
				Target: srv.addr(), Miners: miners, User: "cpu", Hash: true, HashThreads: 2,
				MaxSharesPerMiner: perMiner, VersionRolling: rolling,
			})
			waitSim(t, sim, "hash-mode shares answered", func(s *Summary) bool {
				return s.SharesSent == miners*perMiner && s.SharesUnanswered == 0
			})
			sum := sim.Stop()
			if sum.SharesAccepted != miners*perMiner || len(sum.SharesRejected) != 0 {
				t.Fatalf("accepted %d rejected %v, want all %d accepted", sum.SharesAccepted, sum.SharesRejected, miners*perMiner)
			}
			if sum.Hashes < miners*perMiner || sum.HashRate <= 0 {
				t.Errorf("hashes %d rate %g", sum.Hashes, sum.HashRate)
			}
			bitsSeen := map[string]map[uint32]bool{}
			for _, sh := range srv.sharesSnapshot() {
				if !sh.accepted || sh.hashDiff < diff || sh.jobDiff != diff {
					t.Errorf("share %+v does not meet difficulty %g", sh, diff)
				}
				if sh.hasVersion != rolling {
					t.Errorf("share %+v: version bits present %v, want %v", sh, sh.hasVersion, rolling)
				}
				if rolling {
					if sh.bits == 0 || sh.bits&^0x1fffe000 != 0 {
						t.Errorf("share %+v: version bits %08x outside mask", sh, sh.bits)
					}
					if bitsSeen[sh.worker] == nil {
						bitsSeen[sh.worker] = map[uint32]bool{}
					}
					bitsSeen[sh.worker][sh.bits] = true
				}
			}
			for w, seen := range bitsSeen {
				if len(seen) != perMiner {
					t.Errorf("%s rolled %d distinct version bit patterns over %d shares, want one per share", w, len(seen), perMiner)
				}
			}
			if rolling {
				if v := sim.Miner(0); !v.VersionRolling || v.VersionMask != 0x1fffe000 {
					t.Errorf("miner 0 rolling %v mask %08x", v.VersionRolling, v.VersionMask)
				}
			}
		})
	}
}

func TestSetDifficultyAppliesFromNextNotify(t *testing.T) {
	const d1, d2 = 0.00001, 0.0001
	srv := newTestServer(t, func(s *testServer) { s.validate, s.diff = true, d1 })
	sim := startSim(t, Config{Target: srv.addr(), Miners: 1, User: "d", Hash: true})
	waitSim(t, sim, "first shares", func(s *Summary) bool { return s.SharesAccepted >= 2 })

	srv.setDifficulty(d2)
	waitSim(t, sim, "set_difficulty received", func(*Summary) bool { return sim.Miner(0).PendingDifficulty == d2 })
	if v := sim.Miner(0); v.Difficulty != d1 || v.JobID != "1" {
		t.Fatalf("before the next notify the job keeps its difficulty: got %g on job %q, want %g on job 1", v.Difficulty, v.JobID, d1)
	}
	// Shares on the old job must still be mined at d1: with 8 of them, some
	// are below d2 unless the miner wrongly switched (chance 1e-8).
	n0 := len(srv.sharesSnapshot())
	srv.waitFor("shares on the old job", func() bool { return len(srv.shares) >= n0+8 })
	below := 0
	for _, sh := range srv.sharesSnapshot()[n0:] {
		if sh.job == "1" && sh.hashDiff < d2 {
			below++
		}
		if !sh.accepted {
			t.Errorf("share on the old job rejected: %+v", sh)
		}
	}
	if below == 0 {
		t.Errorf("after set_difficulty without a notify, no old-job share was below the new difficulty: applied too early")
	}

	job2 := srv.broadcastJob()
	waitSim(t, sim, "job 2 at the new difficulty", func(*Summary) bool {
		v := sim.Miner(0)
		return v.JobID == job2 && v.Difficulty == d2
	})
	srv.waitFor("shares on job 2", func() bool {
		n := 0
		for _, sh := range srv.shares {
			if sh.job == job2 {
				n++
			}
		}
		return n >= 3
	})
	for _, sh := range srv.sharesSnapshot() {
		if sh.job == job2 && (sh.hashDiff < d2 || sh.jobDiff != d2 || !sh.accepted) {
			t.Errorf("job 2 share %+v does not meet %g", sh, d2)
		}
	}
}

func TestClientReconnectAndDrop(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr string) {
		srv := newTestServer(t)
		sim := startSim(t, Config{Target: srv.addr(), Miners: 2, User: "r", Transport: tr, ShareInterval: time.Hour,
			ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond})
		waitSim(t, sim, "authorized", func(s *Summary) bool { return s.Authorized == 2 })

		srv.sendReconnect("r.w000")
		waitSim(t, sim, "reconnect after client.reconnect", func(s *Summary) bool {
			return s.ReconnectRequests == 1 && s.Reconnects == 1 && s.Authorized == 2
		})
		if v := sim.Miner(0); v.Reconnects != 1 || v.Disconnects != 0 || !v.Authorized {
			t.Errorf("miner 0 after client.reconnect: %+v", v)
		}
		if sum := sim.Stats(); sum.Disconnects != 0 {
			t.Errorf("client.reconnect counted as a disconnect: %d", sum.Disconnects)
		}

		srv.drop("r.w001")
		waitSim(t, sim, "reconnect after a drop", func(s *Summary) bool {
			return s.Disconnects == 1 && s.Reconnects == 2 && s.Authorized == 2
		})
		if v := sim.Miner(1); v.Reconnects != 1 || v.Disconnects != 1 || v.LastError == "" {
			t.Errorf("miner 1 after a drop: %+v", v)
		}
		srv.mu.Lock()
		connects := srv.connects
		srv.mu.Unlock()
		if connects != 4 {
			t.Errorf("server saw %d connections, want 4", connects)
		}
	})
}

func TestHandshakeTimeoutReconnects(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr string) {
		srv := newTestServer(t, func(s *testServer) { s.mute = true })
		sim := startSim(t, Config{Target: srv.addr(), Miners: 1, User: "m", Transport: tr,
			HandshakeTimeout: 50 * time.Millisecond, ReconnectMin: 10 * time.Millisecond, ReconnectMax: 20 * time.Millisecond})
		waitSim(t, sim, "handshake timeouts", func(s *Summary) bool { return s.Disconnects >= 2 })
		srv.waitFor("second connection", func() bool { return srv.connects >= 2 })
		if v := sim.Miner(0); !strings.Contains(v.LastError, "not authorized") {
			t.Errorf("last error %q", v.LastError)
		}
	})
}

func TestRepliesMatchedByID(t *testing.T) {
	srv := newTestServer(t, func(s *testServer) {
		s.holdPairs = true
		s.verdict = func(sub *codec.Submit) codec.Status {
			if sub.Nonce%2 == 1 {
				return codec.StatusLowDifficulty
			}
			return codec.StatusAccept
		}
	})
	var mu sync.Mutex
	var results []ShareResult
	const shares = 20
	sim := startSim(t, Config{Target: srv.addr(), Miners: 1, User: "o", ShareInterval: 2 * time.Millisecond,
		MaxSharesPerMiner: shares, OnShare: func(r ShareResult) {
			mu.Lock()
			results = append(results, r)
			mu.Unlock()
		}})
	waitSim(t, sim, "all answered", func(s *Summary) bool { return s.SharesSent == shares && s.SharesUnanswered == 0 })
	mu.Lock()
	defer mu.Unlock()
	if len(results) != shares {
		t.Fatalf("got %d results, want %d", len(results), shares)
	}
	reordered := false
	for i, r := range results {
		wantAccept := r.Nonce%2 == 0
		if r.Accepted != wantAccept || (!r.Accepted && r.Code != 23) {
			t.Errorf("share id %d nonce %d: accepted %v code %d, want accepted %v", r.ID, r.Nonce, r.Accepted, r.Code, wantAccept)
		}
		if r.JobID != "1" || r.Latency <= 0 {
			t.Errorf("share id %d: job %q latency %v", r.ID, r.JobID, r.Latency)
		}
		if i > 0 && r.ID < results[i-1].ID {
			reordered = true
		}
	}
	if !reordered {
		t.Errorf("server did not answer out of order; the test proves nothing")
	}
}

func TestSubmitRawReplyKeptApart(t *testing.T) {
	srv := newTestServer(t, func(s *testServer) { s.holdPairs = true })
	sim := startSim(t, Config{Target: srv.addr(), Miners: 1, User: "raw", ShareInterval: time.Millisecond, MaxSharesPerMiner: 1})
	srv.waitFor("the share's reply held back", func() bool { return srv.held == 1 })
	// A submit with an invalid extranonce2: the server answers it first with
	// 27, then the held share with true. Matching by order would count a reject.
	bad := `{"id":"raw-1","method":"mining.submit","params":["raw.w000","1","zz","00000000","00000000"]}`
	if err := sim.SubmitRaw(0, []byte(bad)); err != nil {
		t.Fatalf("SubmitRaw: %v", err)
	}
	waitSim(t, sim, "both replies", func(s *Summary) bool {
		return s.SharesAccepted == 1 && sim.Miner(0).RawReplies == 1
	})
	sum := sim.Stats()
	v := sim.Miner(0)
	if len(sum.SharesRejected) != 0 || sum.SharesUnanswered != 0 || v.SharesAccepted != 1 {
		t.Errorf("share verdicts disturbed by the raw reply: %+v / %+v", sum.SharesRejected, v)
	}
	if !strings.Contains(v.LastRawReply, `"raw-1"`) || !strings.Contains(v.LastRawReply, "27") {
		t.Errorf("raw reply %q", v.LastRawReply)
	}
	if err := sim.SubmitRaw(5, []byte(bad)); err == nil {
		t.Errorf("SubmitRaw on a missing miner succeeded")
	}
}

func TestUnansweredSharesAreLostAtStop(t *testing.T) {
	srv := newTestServer(t, func(s *testServer) { s.silent = true })
	sim := startSim(t, Config{Target: srv.addr(), Miners: 3, User: "s", ShareInterval: 2 * time.Millisecond, MaxSharesPerMiner: 2})
	waitSim(t, sim, "all sent", func(s *Summary) bool { return s.SharesSent == 6 })
	srv.waitFor("all received", func() bool {
		return len(srv.submits) == 3 && srv.submits["s.w002"]+srv.submits["s.w001"]+srv.submits["s.w000"] == 6
	})
	if sum := sim.Stats(); sum.SharesUnanswered != 6 {
		t.Errorf("unanswered %d, want 6", sum.SharesUnanswered)
	}
	final := sim.Stop()
	if final.SharesUnanswered != 6 || final.SharesAccepted != 0 || final.Connected != 3 {
		t.Errorf("final: unanswered %d accepted %d connected %d", final.SharesUnanswered, final.SharesAccepted, final.Connected)
	}
	if again := sim.Stop(); again.SharesSent != final.SharesSent {
		t.Errorf("second Stop changed the summary")
	}
}

func TestFanoutLatency(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr string) {
		srv := newTestServer(t)
		const miners = 20
		sim := startSim(t, Config{Target: srv.addr(), Miners: miners, User: "f", Transport: tr, ShareInterval: time.Hour,
			JobTimestamp: HexStamp(testMarker)})
		waitSim(t, sim, "first job everywhere", func(s *Summary) bool { return s.Authorized == miners && s.Notifies == miners })
		var ids []string
		for k := 2; k <= 4; k++ {
			ids = append(ids, srv.broadcastJob())
			waitSim(t, sim, "job fan-out", func(s *Summary) bool { return s.Notifies == int64(k*miners) })
		}
		sum := sim.Stats()
		// The job each miner got at authorize is not a broadcast: not sampled.
		if sum.FanoutSamples != 3*miners {
			t.Fatalf("fan-out samples %d, want %d", sum.FanoutSamples, 3*miners)
		}
		if sum.FanoutP50 <= 0 || sum.FanoutP99 < sum.FanoutP50 || sum.FanoutMax < sum.FanoutP99 || sum.FanoutMax > 10*time.Second {
			t.Errorf("fan-out p50 %v p99 %v max %v", sum.FanoutP50, sum.FanoutP99, sum.FanoutMax)
		}
		byID := map[string]JobFanout{}
		for _, j := range sum.Jobs {
			byID[j.JobID] = j
		}
		if j := byID["1"]; j.Miners != miners || j.Max != 0 {
			t.Errorf("first job record %+v: want %d miners and no fan-out latency", j, miners)
		}
		for _, id := range ids {
			j, ok := byID[id]
			if !ok || j.Miners != miners || !j.Stamped || j.Max <= 0 || j.Max > sum.FanoutMax || j.Last.Before(j.First) {
				t.Errorf("job %s fan-out record %+v (present %v)", id, j, ok)
			}
			srv.mu.Lock()
			written := srv.jobs[id].written
			srv.mu.Unlock()
			if !j.Written.Equal(written) {
				t.Errorf("job %s stamp %v, server wrote %v", id, j.Written, written)
			}
		}
	})
}

// With KernelArrival the netio transport also measures each notify to the
// kernel's receive time, which can only come before the simulator's read;
// without it, or on another transport, there are no such samples and the
// JSON summary leaves the figures out rather than print zeros.
func TestFanoutKernelArrival(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("receive timestamps are Linux only")
	}
	for _, c := range []struct {
		tr   string
		on   bool
		want bool
	}{{TransportNetio, true, true}, {TransportNetio, false, false}, {TransportGoroutine, true, false}} {
		t.Run(fmt.Sprintf("%s/%v", c.tr, c.on), func(t *testing.T) {
			srv := newTestServer(t)
			const miners = 10
			sim := startSim(t, Config{Target: srv.addr(), Miners: miners, User: "k", Transport: c.tr, ShareInterval: time.Hour,
				JobTimestamp: HexStamp(testMarker), KernelArrival: c.on})
			waitSim(t, sim, "first job everywhere", func(s *Summary) bool { return s.Authorized == miners && s.Notifies == miners })
			id := srv.broadcastJob()
			waitSim(t, sim, "job fan-out", func(s *Summary) bool { return s.Notifies == 2*miners })
			sum := sim.Stats()
			js, err := json.Marshal(sum)
			if err != nil {
				t.Fatal(err)
			}
			inJSON := bytes.Contains(js, []byte(`"fanout_kernel_p99_ms"`))
			var job JobFanout
			for _, j := range sum.Jobs {
				if j.JobID == id {
					job = j
				}
			}
			if !c.want {
				if sum.FanoutKernelSamples != 0 || job.KernelMax != 0 || inJSON {
					t.Fatalf("kernel samples %d, job kernel max %v, in JSON %v; want none", sum.FanoutKernelSamples, job.KernelMax, inJSON)
				}
				return
			}
			if sum.FanoutKernelSamples != miners || sum.FanoutSamples != miners || !inJSON {
				t.Fatalf("kernel samples %d, samples %d, in JSON %v; want %d each", sum.FanoutKernelSamples, sum.FanoutSamples, inJSON, miners)
			}
			if job.KernelMax <= 0 || job.KernelMax > job.Max || sum.FanoutKernelMax > sum.FanoutMax {
				t.Errorf("job %s: kernel max %v, max %v; summary kernel max %v, max %v", id, job.KernelMax, job.Max, sum.FanoutKernelMax, sum.FanoutMax)
			}
		})
	}
}

func TestSetVersionMaskAndExtranonce(t *testing.T) {
	srv := newTestServer(t)
	sim := startSim(t, Config{Target: srv.addr(), Miners: 1, User: "v", VersionRolling: true,
		ShareInterval: 2 * time.Millisecond})
	waitSim(t, sim, "rolling shares", func(s *Summary) bool { return s.SharesAccepted >= 3 })
	c := srv.connOf("v.w000")
	c.write([]byte(`{"id":null,"method":"mining.set_version_mask","params":["00006000"]}` + "\n"))
	c.write([]byte(`{"id":null,"method":"mining.set_extranonce","params":["b0b0b0b0",4]}` + "\n"))
	waitSim(t, sim, "new mask and extranonce", func(*Summary) bool {
		v := sim.Miner(0)
		return v.VersionMask == 0x6000 && v.ExtraNonce1 == "b0b0b0b0"
	})
	// Shares on one connection arrive in order, so everything from the k-th
	// share of this worker on was built with the new mask.
	k := int(sim.Miner(0).SharesSent)
	srv.waitFor("shares after the mask change", func() bool { return srv.submits["v.w000"] >= k+10 })
	n := 0
	for _, sh := range srv.sharesSnapshot() {
		if sh.worker != "v.w000" {
			continue
		}
		if n >= k && (!sh.hasVersion || sh.bits&^0x6000 != 0) {
			t.Errorf("share %d after set_version_mask 00006000 has bits %08x", n, sh.bits)
		}
		n++
	}
}

func TestUnansweredConfigureDoesNotBlock(t *testing.T) {
	srv := newTestServer(t, func(s *testServer) { s.noConfig = true })
	sim := startSim(t, Config{Target: srv.addr(), Miners: 2, User: "nc", VersionRolling: true,
		ShareInterval: 2 * time.Millisecond, MaxSharesPerMiner: 3})
	waitSim(t, sim, "shares without a configure reply", func(s *Summary) bool {
		return s.SharesAccepted == 6 && s.SharesUnanswered == 0
	})
	v := sim.Miner(0)
	if v.VersionRolling || v.Pending != 1 {
		t.Errorf("miner 0: rolling %v, pending %d (the configure), want false and 1", v.VersionRolling, v.Pending)
	}
	for _, sh := range srv.sharesSnapshot() {
		if sh.hasVersion {
			t.Errorf("share %+v carries version bits although rolling was never granted", sh)
		}
	}
}

// TestProtocolErrorsCounted: bad lines are counted and skipped, on every
// transport, and a notify cut across two writes still arrives whole.
func TestProtocolErrorsCounted(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr string) {
		srv := newTestServer(t)
		sim := startSim(t, Config{Target: srv.addr(), Miners: 1, User: "p", Transport: tr, ShareInterval: time.Hour,
			JobTimestamp: HexStamp(testMarker)})
		waitSim(t, sim, "authorized", func(s *Summary) bool { return s.Authorized == 1 && s.Notifies == 1 })
		c := srv.connOf("p.w000")
		c.write([]byte("this is not json\n"))
		c.write([]byte(`{"id":null,"method":"mining.notify","params":["j",1]}` + "\n"))
		srv.mu.Lock()
		line := srv.newJobLocked().n.AppendLine(nil, "", true)
		srv.mu.Unlock()
		c.write(line[:len(line)/2])
		c.write(line[len(line)/2:])
		waitSim(t, sim, "the good notify", func(s *Summary) bool { return s.Notifies == 3 })
		sum := sim.Stats()
		if sum.ProtocolErrors != 2 || sum.Connected != 1 || sum.Disconnects != 0 || sum.FanoutSamples != 1 {
			t.Errorf("protocol errors %d connected %d disconnects %d fan-out samples %d, want 2, 1, 0, 1",
				sum.ProtocolErrors, sum.Connected, sum.Disconnects, sum.FanoutSamples)
		}
		if v := sim.Miner(0); v.JobID != "2" || v.JobsSeen != 2 || !strings.Contains(v.LastError, "bad params") {
			t.Errorf("miner after bad lines: job %q seen %d last error %q", v.JobID, v.JobsSeen, v.LastError)
		}
	})
}
