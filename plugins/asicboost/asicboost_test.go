package asicboost_test

import (
	"strings"
	"testing"

	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/plugins/asicboost"
	"github.com/btcagent/btcagent/plugins/plugintest"
)

// The legacy conversion enables the plugin without options: the default
// threshold of 100 rolled shares applies, exactly.
func TestDefaultThreshold(t *testing.T) {
	c := plugintest.Build(t, plugintest.Spec(asicboost.Name, false, nil))
	var scratch msg.Scratch
	share := func(bits uint32) *msg.ShareSubmitted {
		m := &msg.ShareSubmitted{Job: &msg.Job{ID: "j"}, VersionBits: bits, HasVersion: bits != 0, Scratch: &scratch}
		if v := c.OnSubmit(m); v != msg.Continue {
			t.Fatalf("the guard must never reject, got %v", v)
		}
		return m
	}
	for i := 0; i < asicboost.DefaultAfterShares-1; i++ {
		share(0x2000)
	}
	if share(0).Reconnect {
		t.Fatal("reconnect after 99 rolled shares")
	}
	// That miner was excluded by the share without bits; a fresh one rolls 100.
	scratch = msg.Scratch{}
	for i := 0; i < asicboost.DefaultAfterShares; i++ {
		share(0x4000)
	}
	if !share(0).Reconnect {
		t.Fatal("no reconnect after 100 rolled shares and one without")
	}
	if share(0).Reconnect {
		t.Fatal("reconnect asked twice on one connection")
	}
}

func TestProvisionErrors(t *testing.T) {
	_, err := plugintest.BuildErr(plugintest.Spec(asicboost.Name, false, map[string]any{"after_shares": -1}))
	if err == nil || !strings.Contains(err.Error(), "after_shares = -1") {
		t.Fatalf("error %v", err)
	}
	_, err = plugintest.BuildErr(plugintest.Spec(asicboost.Name, false, map[string]any{"after": 5}))
	if err == nil || !strings.Contains(err.Error(), `unknown key "after"`) {
		t.Fatalf("error %v", err)
	}
}
