package upstream_test

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/poolsim"
)

// rawWork is what a hand-driven miner mines on.
type rawWork struct {
	en1     []byte
	en2Size int
	diff    float64
	notify  *codec.Notify
}

// readWork reads messages until a job arrives, applying set_extranonce and
// set_difficulty on the way.
func readWork(t *testing.T, m *testenv.RawMiner, w *rawWork) {
	t.Helper()
	for {
		x := m.Next(wait)
		switch x.Method {
		case "mining.set_extranonce":
			var size int
			_ = json.Unmarshal(x.Params[1], &size)
			b, err := hex.DecodeString(x.Str(0))
			if err != nil {
				t.Fatalf("set_extranonce: %s", x.Raw)
			}
			w.en1, w.en2Size = b, size
		case "mining.set_difficulty":
			d, err := strconv.ParseFloat(string(x.Params[0]), 64)
			if err != nil {
				t.Fatalf("set_difficulty: %s", x.Raw)
			}
			w.diff = d
		case "mining.notify":
			var rq codec.Request
			if err := codec.ScanRequest([]byte(x.Raw), &rq); err != nil {
				t.Fatal(err)
			}
			n, err := codec.ParseNotify(&rq)
			if err != nil {
				t.Fatal(err)
			}
			w.notify = n
			return
		}
	}
}

// mine grinds nonces until a share meets the job's difficulty and returns
// the submit params after the worker name.
func (w *rawWork) mine(t *testing.T, en2 uint64) string {
	t.Helper()
	hj, err := codec.NewHashJob(w.notify, "")
	if err != nil {
		t.Fatal(err)
	}
	en2b := make([]byte, w.en2Size)
	for i := range en2b {
		en2b[w.en2Size-1-i] = byte(en2 >> (8 * i))
	}
	tgt := codec.TargetFromDifficulty(w.diff)
	ver, ntime := w.notify.VersionValue(), w.notify.NTimeValue()
	for nonce := uint32(0); nonce < 1<<26; nonce++ {
		if tgt.Met(hj.Hash(w.en1, en2b, ver, ntime, nonce)) {
			return fmt.Sprintf(`"%s","%x","%08x","%08x"`, w.notify.JobID, en2b, ntime, nonce)
		}
	}
	t.Fatal("no share found")
	return ""
}

// Per-miner links to a pool whose extranonce2 is smaller than 8 bytes: a
// miner that subscribed to extranonce changes gets the pool's nonce space
// through mining.set_extranonce, hashes the pool's coinbase byte for byte,
// and its shares are accepted. Pool EN2 sizes 4, 6 (the miner keeps a
// 4-byte EN2, the rest goes into coinb1 and its EN1) and 2 (the miner's
// EN2 is the pool's 2 bytes).
func TestPerMinerSmallEN2WithExtranonceSubscribe(t *testing.T) {
	for _, size := range []int{4, 6, 2} {
		t.Run(fmt.Sprintf("en2-%d", size), func(t *testing.T) {
			pool := testenv.Pool(t, poolsim.Config{EN2Size: size, JSONDiff: 1e-6})
			cfg := withProtocols(testenv.Config(t, "farm", pool.Addr()), config.ProtocolStratumPerMiner)
			cfg.Listen[0].Connections = 1
			a, _ := startAgent(t, cfg)
			m := testenv.Dial(t, testenv.Addr(a))
			m.Send(`{"id":1,"method":"mining.subscribe","params":["cgminer/4.11"]}`)
			sub, _ := m.Until(wait, func(x testenv.Msg) bool { return string(x.ID) == "1" })
			var res []json.RawMessage
			_ = json.Unmarshal(sub.Result, &res)
			m.Send(`{"id":2,"method":"mining.extranonce.subscribe","params":[]}`)
			m.Until(wait, func(x testenv.Msg) bool { return string(x.ID) == "2" })
			m.Send(`{"id":3,"method":"mining.authorize","params":["john.small","x"]}`)
			w := &rawWork{en2Size: 4}
			readWork(t, m, w)
			st := pool.Stats()
			var conn poolsim.ConnStats
			for _, c := range st.Conns {
				if c.User == "farm.small" {
					conn = c
				}
			}
			if conn.EN1 == "" {
				t.Fatalf("no pool connection for farm.small: %+v", st.Conns)
			}
			// The miner's extranonce is the pool's nonce space (see enMap).
			wantEN2 := 4
			wantEN1 := conn.EN1 + strings.Repeat("00", max(size-4, 0))
			if size < 4 {
				wantEN2, wantEN1 = size, conn.EN1
			}
			if got := hex.EncodeToString(w.en1); w.en2Size != wantEN2 || got != wantEN1[len(wantEN1)-8:] {
				t.Fatalf("miner extranonce %s/%d, want %s/%d", got, w.en2Size, wantEN1[len(wantEN1)-8:], wantEN2)
			}
			for i := 0; i < 3; i++ {
				params := w.mine(t, uint64(i+1))
				m.Send(fmt.Sprintf(`{"id":%d,"method":"mining.submit","params":["john.small",%s]}`, 10+i, params))
				r, _ := m.Until(wait, func(x testenv.Msg) bool { return string(x.ID) == strconv.Itoa(10+i) })
				if string(r.Result) != "true" {
					t.Fatalf("share %d: %s", i, r.Raw)
				}
			}
			if got := pool.Stats().Workers["farm.small"].Accepted; got != 3 {
				t.Fatalf("pool accepted %d shares of farm.small", got)
			}
		})
	}
}

// A miner that did not subscribe to extranonce changes cannot be served by
// a per-miner pool with a 4-byte extranonce2: the refusal is logged in one
// line, and the coordinator applies the outage policy to that miner only
// (here "disconnect"), while subscribed miners on the same slot work.
func TestPerMinerSmallEN2RefusesMinerWithoutExtranonceSubscribe(t *testing.T) {
	pool := testenv.Pool(t, poolsim.Config{EN2Size: 4, JSONDiff: 1e-5})
	cfg := withProtocols(testenv.Config(t, "farm", pool.Addr()), config.ProtocolStratumPerMiner)
	cfg.Listen[0].Connections = 1
	cfg.Outage.Policy = config.OutageDisconnect
	a, logs := startAgent(t, cfg)

	good := testenv.Dial(t, testenv.Addr(a))
	good.Send(`{"id":1,"method":"mining.subscribe","params":["cgminer/4.11"]}`)
	good.Send(`{"id":2,"method":"mining.extranonce.subscribe","params":[]}`)
	good.Send(`{"id":3,"method":"mining.authorize","params":["john.good","x"]}`)
	readWork(t, good, &rawWork{})

	bad := testenv.Dial(t, testenv.Addr(a))
	bad.Send(`{"id":1,"method":"mining.subscribe","params":["cgminer/4.11"]}`)
	bad.Send(`{"id":3,"method":"mining.authorize","params":["john.bad","x"]}`)
	logs.waitFor(t, "cannot be served", "did not send mining.extranonce.subscribe", "worker=bad")
	for {
		line, err := bad.TryLine(wait)
		if err != nil {
			break // closed by the agent
		}
		var x testenv.Msg
		_ = json.Unmarshal([]byte(line), &x)
		if x.Method == "mining.notify" {
			t.Fatalf("refused miner got work: %s", line)
		}
	}
	if w, ok := pool.Stats().Workers["farm.bad"]; ok {
		t.Fatalf("pool saw the refused miner: %+v", w)
	}
	snap, err := a.Listeners()[0].Snapshot(time.Second)
	if err != nil || !snap.Upstreams[0].Ready {
		t.Fatalf("slot should stay ready: %+v %v", snap, err)
	}
}
