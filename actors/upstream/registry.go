package upstream

import (
	"fmt"

	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/config"
)

var protocols = map[string]protocol{}

// register makes a protocol available under its `protocol` config value.
// Call it from an init function of the protocol's file.
func register(name string, p protocol) {
	if _, dup := protocols[name]; dup {
		panic(fmt.Sprintf("upstream: protocol %q registered twice", name))
	}
	protocols[name] = p
	config.RegisterProtocol(name)
}

// protoOf is the protocol of pool p (agent when the entry names none).
func protoOf(p msg.PoolAddr) (string, protocol) {
	name := p.Protocol
	if name == "" {
		name = config.ProtocolAgent
	}
	return name, protocols[name]
}

// linkEvent carries a protocol's own event from its reader to its handle.
type linkEvent struct {
	gen uint64
	ev  any
}

// post sends a message to the slot from a link goroutine.
func (s *Slot) post(m any) { s.env.Root.Send(s.self, m) }

// postLink sends a protocol event for link l to the slot (reader side).
func (s *Slot) postLink(l *link, ev any) { s.post(&linkEvent{gen: l.gen, ev: ev}) }
