package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/btcagent/btcagent/sim/poolsim"
)

// Agent kinds: what Options.AgentBin is and so how the harness configures,
// starts and waits for it.
const (
	// KindGo is this repository's agent: a TOML config, -c, ready when the
	// pool sees its links.
	KindGo = "go"
	// KindCpp is btccom's original C++ agent (btccom/btcagent, branch
	// legacy), measured as a reference: a JSON config, -c and -l, and no
	// API, so it is ready when the pool has authorized all its links and
	// its miner port accepts connections.
	KindCpp = "cpp"
)

// LegacyLinks is how many pool links the C++ agent opens: a compile-time
// constant there (kUpSessionCount_), not a setting.
const LegacyLinks = 5

// legacyConfig is the C++ agent's JSON configuration, only the keys the
// benchmark sets. Everything else keeps that agent's defaults, which match
// this agent's where both have the setting (submit_response_from_server is
// false in both).
type legacyConfig struct {
	ListenIP   string  `json:"agent_listen_ip"`
	ListenPort int     `json:"agent_listen_port"`
	Pools      [][]any `json:"pools"` // [host, port, user]
}

// writeLegacyConfig writes the C++ agent's config: the loopback listener and
// the pool simulator under the same pool user this agent gets.
func writeLegacyConfig(path string, port int, poolAddr string) error {
	host, ps, err := net.SplitHostPort(poolAddr)
	if err != nil {
		return fmt.Errorf("pool address %q: %w", poolAddr, err)
	}
	pport, err := strconv.Atoi(ps)
	if err != nil {
		return fmt.Errorf("pool address %q: %w", poolAddr, err)
	}
	data, err := json.MarshalIndent(legacyConfig{
		ListenIP: "127.0.0.1", ListenPort: port,
		Pools: [][]any{{host, pport, "bench"}},
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode legacy agent config: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write legacy agent config: %w", err)
	}
	return nil
}

// startLegacy configures and starts the C++ agent and waits until it can
// take miners. It only opens its miner port once every link has
// authorized, so both conditions are checked: links at the pool, for a
// clear error if the handshake fails, and the port, because that is what
// the miners need.
func (e *env) startLegacy(ctx context.Context, prog string, port int) error {
	cfgPath := filepath.Join(e.o.Dir, "agent_conf.json")
	if err := writeLegacyConfig(cfgPath, port, e.pool.Addr()); err != nil {
		return err
	}
	// glog writes its files into -l, which must exist; anything at ERROR
	// and above also goes to stderr, i.e. agent.log.
	logDir := filepath.Join(e.o.Dir, "agent-glog")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return fmt.Errorf("create legacy agent log directory: %w", err)
	}
	e.conns = LegacyLinks
	var err error
	e.agent, err = startChild("btcagent (C++)", filepath.Join(e.o.Dir, "agent.log"), filepath.Join(e.o.Dir, "agent.stdout"),
		nil, nil, prog, "-c", cfgPath, "-l", logDir)
	if err != nil {
		return err
	}
	authorized := 0
	err = poll(ctx, 200*time.Millisecond, 60*time.Second, func() (bool, error) {
		if e.agent.Exited() {
			return false, fmt.Errorf("%w (see %s and %s)", e.agent.ExitError(), filepath.Join(e.o.Dir, "agent.log"), logDir)
		}
		authorized = authorizedAgentLinks(e.pool.Stats().Conns)
		if authorized < LegacyLinks {
			return false, nil
		}
		c, err := net.DialTimeout("tcp", e.agentAddr, time.Second)
		if err != nil {
			return false, nil // not listening yet
		}
		c.Close()
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the C++ agent (%d of %d links authorized at the pool, then its miner port): %w",
			authorized, LegacyLinks, err)
	}
	return nil
}

// authorizedAgentLinks counts the open agent links that have authorized.
func authorizedAgentLinks(conns []poolsim.ConnStats) int {
	n := 0
	for _, c := range conns {
		if c.Agent && c.Authorized && c.Closed.IsZero() {
			n++
		}
	}
	return n
}
