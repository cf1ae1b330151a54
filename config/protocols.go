package config

import (
	"slices"
	"sync"
)

// The values a pool entry's `protocol` may take. The built-in ones are always
// known; upstream protocol implementations add theirs with
// RegisterProtocol from an init function, so that a new protocol is one file
// and its name, and `config check` knows it as soon as it is linked in.
var (
	protoMu    sync.RWMutex
	protoNames = []string{ProtocolAgent, ProtocolStratum, ProtocolStratumPerMiner, ProtocolSV2, ProtocolSV2PerMiner}
)

// RegisterProtocol makes name a valid pool protocol. Registering a name
// twice is harmless.
func RegisterProtocol(name string) {
	protoMu.Lock()
	defer protoMu.Unlock()
	if !slices.Contains(protoNames, name) {
		protoNames = append(protoNames, name)
	}
}

// KnownProtocol reports whether name is a registered pool protocol.
func KnownProtocol(name string) bool {
	protoMu.RLock()
	defer protoMu.RUnlock()
	return slices.Contains(protoNames, name)
}

// Protocols lists the registered pool protocols in registration order.
func Protocols() []string {
	protoMu.RLock()
	defer protoMu.RUnlock()
	return slices.Clone(protoNames)
}
