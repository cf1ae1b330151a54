package bench

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/btcagent/btcagent/sim/poolsim"
)

// TestWriteLegacyConfig checks the exact shape the C++ agent's config
// parser expects: pools as an array of [host, port, user] arrays, the port
// as a JSON number.
func TestWriteLegacyConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent_conf.json")
	if err := writeLegacyConfig(path, 3333, "127.0.0.1:1800"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, data)
	}
	if got["agent_listen_ip"] != "127.0.0.1" || got["agent_listen_port"] != float64(3333) || len(got) != 3 {
		t.Errorf("listener: %s", data)
	}
	pools, ok := got["pools"].([]any)
	if !ok || len(pools) != 1 {
		t.Fatalf("pools: %s", data)
	}
	p, ok := pools[0].([]any)
	if !ok || len(p) != 3 || p[0] != "127.0.0.1" || p[1] != float64(1800) || p[2] != "bench" {
		t.Errorf("pool entry %v, want [127.0.0.1 1800 bench]", pools[0])
	}
	if err := writeLegacyConfig(path, 3333, "no-port"); err == nil {
		t.Error("pool address without a port accepted")
	}
}

func TestAuthorizedAgentLinks(t *testing.T) {
	conns := []poolsim.ConnStats{
		{ID: 1, Agent: true, Authorized: true},
		{ID: 2, Agent: true, Subscribed: true},  // handshake not finished
		{ID: 3, Agent: false, Authorized: true}, // a plain miner
		{ID: 4, Agent: true, Authorized: true, Closed: time.Unix(1, 0)},
		{ID: 5, Agent: true, Authorized: true},
	}
	if n := authorizedAgentLinks(conns); n != 2 {
		t.Fatalf("got %d authorized agent links, want 2", n)
	}
}
