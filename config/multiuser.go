package config

import (
	"fmt"
	"time"

	"github.com/btcagent/btcagent/internal/subaccount"
)

// SubAccountOptions are the [listen.subaccounts] settings of a listener
// with multi_user = true, where each miner's name ("alice.rig7") chooses the
// pool sub-account ("alice") and every sub-account seen gets its own pool
// links. A worker name without a dot is refused: there is no default
// sub-account, so a customer's miner can never hash into someone else's
// account by a typing slip.
type SubAccountOptions struct {
	// Connections is the number of pool links per sub-account, like a
	// listener's connections; 0 = the listener's connections.
	Connections int `toml:"connections"`
	// Max caps the sub-accounts with open links on the listener; a miner
	// of a new one is refused past it (sub-accounts without miners, whose
	// links wait out their grace, make room first).
	Max int `toml:"max"`
	// Grace is how long a sub-account's links stay open after its last
	// miner left, so that miners reconnecting do not cost a new login.
	Grace time.Duration `toml:"grace"`
	// Allow and AllowPattern restrict who may use the listener: exact
	// names, and a regular expression matched against the whole name. A
	// name passes if either admits it; both empty admit every valid name.
	Allow        []string `toml:"allow"`
	AllowPattern string   `toml:"allow_pattern"`
}

// Bounds and defaults of [listen.subaccounts].
const (
	DefaultMaxSubAccounts = 100
	MaxSubAccountsLimit   = 10000
	DefaultSubAccountWait = 60 * time.Second
	MaxSubAccountGrace    = 24 * time.Hour
)

// DefaultSubAccounts returns the [listen.subaccounts] defaults; Connections
// is left 0, meaning the listener's.
func DefaultSubAccounts() SubAccountOptions {
	return SubAccountOptions{Max: DefaultMaxSubAccounts, Grace: DefaultSubAccountWait}
}

// presetDefaults is called by the decoder before it reads the table, so a
// key left out has its default while one written as 0 stays 0 and is
// refused by Validate rather than silently replaced.
func (s *SubAccountOptions) presetDefaults() { *s = DefaultSubAccounts() }

// IsZero reports whether nothing is set (no table, nothing from code).
func (s *SubAccountOptions) IsZero() bool {
	return s.Connections == 0 && s.Max == 0 && s.Grace == 0 && len(s.Allow) == 0 && s.AllowPattern == ""
}

// AllowList builds the listener's allow-list. Validate has checked the
// names and the pattern, so an error here means the config was not
// validated.
func (s *SubAccountOptions) AllowList() (*subaccount.AllowList, error) {
	a, err := subaccount.NewAllowList(s.Allow, s.AllowPattern)
	if err != nil {
		return nil, fmt.Errorf("config: subaccounts: %w", err)
	}
	return a, nil
}

// applySubAccountDefaults fills a multi-user listener's table: all defaults
// when nothing was set, and the listener's connections when left at 0.
func (l *Listener) applySubAccountDefaults() {
	if !l.MultiUser {
		return
	}
	if l.SubAccounts.IsZero() {
		l.SubAccounts = DefaultSubAccounts()
	}
	if len(l.SubAccounts.Allow) == 0 {
		l.SubAccounts.Allow = nil // "allow = []" and no key are the same setting
	}
	if l.SubAccounts.Connections == 0 {
		l.SubAccounts.Connections = l.Connections
	}
}

// validateMultiUser checks the multi-user settings of listener l (p is its
// key path, label its name in messages).
func validateMultiUser(l *Listener, p keyPath, label string) *Error {
	sp := p.child("subaccounts")
	s := &l.SubAccounts
	if !l.MultiUser {
		if !s.IsZero() {
			return errorAt(sp, "%s: [listen.subaccounts] has no effect without multi_user = true", label)
		}
		return nil
	}
	if l.PoolUser != "" {
		return errorAt(p.child("pool_user"), "%s: pool_user has no effect with multi_user = true (each miner's name chooses its sub-account); remove it", label)
	}
	for j := range l.Pools {
		if l.Pools[j].User != "" {
			pp := p.child("pool").elem(j)
			return errorAt(pp.child("user"), "%s: user has no effect with multi_user = true (each miner's name chooses its sub-account); remove it", pp.indexed())
		}
	}
	if s.IsZero() {
		return nil // ApplyDefaults has not run yet; the defaults are valid
	}
	if s.Connections != 0 && (s.Connections < 1 || s.Connections > 64) {
		return errorAt(sp.child("connections"), "%s: subaccounts.connections = %d is out of range 1..64", label, s.Connections)
	}
	if s.Max < 1 || s.Max > MaxSubAccountsLimit {
		return errorAt(sp.child("max"), "%s: subaccounts.max = %d is out of range 1..%d", label, s.Max, MaxSubAccountsLimit)
	}
	if s.Grace < time.Second || s.Grace > MaxSubAccountGrace {
		return errorAt(sp.child("grace"), "%s: subaccounts.grace = %q is out of range 1s..24h", label, formatDuration(s.Grace))
	}
	seen := map[string]int{}
	for i, name := range s.Allow {
		ep := sp.child("allow").elem(i)
		if err := subaccount.Check(name); err != nil {
			return errorAt(ep, "%s: subaccounts.allow[%d]: %v", label, i, err)
		}
		if j, dup := seen[name]; dup {
			return errorAt(ep, "%s: subaccounts.allow[%d] repeats allow[%d] (%q)", label, i, j, name)
		}
		seen[name] = i
	}
	if s.AllowPattern != "" {
		if _, err := subaccount.CompilePattern(s.AllowPattern); err != nil {
			return errorAt(sp.child("allow_pattern"), "%s: subaccounts.%v", label, err)
		}
	}
	return nil
}

// PluginPoolRoute sends miners to routes with pool users of their own,
// which a multi-user listener cannot have: its miners' names choose.
const PluginPoolRoute = "pool-route"

// refuseOnMultiUser refuses a plugin that rewrites the pool user when it
// applies to a multi-user listener.
func (c *Config) refuseOnMultiUser(s *PluginSpec, p keyPath) *Error {
	if s.Name != PluginPoolRoute {
		return nil
	}
	for i := range c.Listen {
		if l := &c.Listen[i]; l.MultiUser && s.AppliesTo(l.Port) {
			return errorAt(p, "%scannot run on multi-user listener %s, where each miner's name chooses its sub-account; limit it to other ports with listen = [...]", s.label(), l.Name)
		}
	}
	return nil
}
