// Package asicboost is the "asicboost-guard" plugin, the legacy option
// disconnect_when_lost_asicboost (docs/PROTOCOL.md §8.2). Some firmware
// silently stops rolling version bits (ASICBoost) after a while and then
// hashes noticeably slower; a fresh connection turns it back on. A miner that
// sent version bits with each of its first `after_shares` shares and then
// sends a share without them is asked to reconnect (client.reconnect). The
// share itself is still forwarded: it is valid, only slower to find.
//
//	[[plugins]]
//	name = "asicboost-guard"
//	after_shares = 100   # default
//
// A miner that sends a share without bits before reaching after_shares is
// not an ASICBoost miner (or not a steady one) and is never asked. The
// request is sent once per connection; the counter lives in the miner's
// Scratch and so starts again on the next connection.
package asicboost

import (
	"fmt"

	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/plugins"
	"github.com/sirupsen/logrus"
)

// Name is the plugin's registry name.
const Name = "asicboost-guard"

// DefaultAfterShares is the legacy agents' threshold.
const DefaultAfterShares = 100

func init() {
	plugins.Register(plugins.Info{
		Name:        Name,
		Description: "sends client.reconnect to a miner that stops rolling version bits (lost ASICBoost)",
		New:         func() plugins.Plugin { return new(Guard) },
	})
}

// Guard is the plugin and its options.
type Guard struct {
	// AfterShares is how many shares with version bits a miner must have
	// sent, from its first share on, before a share without them counts as
	// lost ASICBoost. Zero means DefaultAfterShares.
	AfterShares int `toml:"after_shares"`

	slot int
	log  logrus.FieldLogger
}

// state is one miner's progress, kept in its Scratch.
type state struct {
	rolled   int  // shares with version bits so far
	steady   bool // every share so far had bits and there were AfterShares of them
	excluded bool // a share without bits came first: not watched
	asked    bool // client.reconnect already requested on this connection
}

var (
	_ plugins.Provisioner = (*Guard)(nil)
	_ plugins.SubmitHook  = (*Guard)(nil)
)

// PluginName implements plugins.Plugin.
func (*Guard) PluginName() string { return Name }

// Provision applies the default.
func (g *Guard) Provision(env plugins.Env) error {
	switch {
	case g.AfterShares == 0:
		g.AfterShares = DefaultAfterShares
	case g.AfterShares < 0:
		return fmt.Errorf("after_shares = %d: must be positive", g.AfterShares)
	}
	g.slot, g.log = env.Index, env.Log
	return nil
}

// OnSubmit counts rolled shares and asks for a reconnect when a steady
// roller stops rolling. It never rejects.
func (g *Guard) OnSubmit(m *msg.ShareSubmitted) msg.Verdict {
	st, _ := m.Scratch.Get(g.slot).(*state)
	if st == nil {
		st = new(state)
		m.Scratch.Set(g.slot, st)
	}
	switch {
	case st.excluded || st.asked:
	case m.HasVersion:
		st.rolled++
		if st.rolled >= g.AfterShares {
			st.steady = true
		}
	case st.steady:
		st.asked = true
		m.Reconnect = true
		if g.log != nil && m.Info != nil {
			g.log.WithFields(logrus.Fields{"worker": m.Info.Worker, "remote": m.Info.Remote.String(), "rolled_shares": st.rolled}).
				Info("miner stopped rolling version bits (lost ASICBoost); asking it to reconnect")
		}
	default:
		st.excluded = true
	}
	return msg.Continue
}
