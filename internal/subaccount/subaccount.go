// Package subaccount holds the naming rules of multi-user mode, where the
// miner's own authorize name chooses the pool sub-account it works for
// ("alice.rig7" mines for sub-account "alice" as worker "rig7").
//
// Everything here is pure: no I/O, no clock of its own, no locking. The
// listener calls it from a single goroutine, so the refusals a miner sees
// and the cap on open sub-accounts are decided in one place, and the config
// loader uses the same rules to check the allow-list when it is loaded.
//
// # The name rule
//
// A btcpool-family pool splits the authorize name at its first dot and then
// silently drops every character outside [A-Za-z0-9] and - . _ : | ^ /
// (codec.FilterName). A sub-account the pool would alter that way would send
// the hashrate to a different account than the one the miner typed, so the
// agent refuses such a name instead of passing it on: a sub-account is 1 to
// MaxLen characters from A-Z a-z 0-9 - _ : | ^ / (the pool's set without the
// dot, which would end the sub-account). MaxLen is the agent's own bound,
// longer than any real sub-account name; the pool's limit on the worker part
// does not apply to it. Case is kept: pools that fold case treat "Alice" and
// "alice" as one account, but to the agent they are two, each with its own
// links, so miners should use one spelling.
package subaccount

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/btcagent/btcagent/codec"
)

// MaxLen is the longest sub-account name accepted.
const MaxLen = 64

// Name is how a miner's authorize name splits under multi-user rules.
type Name struct {
	SubAccount string // the part before the first dot, unaltered
	Worker     string // the part after it as the pool registers it (codec.SplitWorker)
}

// Full is the name the pool shows: "<sub-account>.<worker>".
func (n Name) Full() string { return n.SubAccount + "." + n.Worker }

// Split cuts a miner's authorize name at the first dot. A name without a
// dot is refused: it names no sub-account, and guessing one would put a
// customer's hashrate in someone else's account. The worker part gets the
// same treatment as in single-user mode (filtered, "__default__" when
// empty), so a miner keeps its worker name when a port switches modes.
func Split(authName string) (Name, *Refusal) {
	sub, _, ok := strings.Cut(authName, ".")
	if !ok {
		return Name{}, refuse(NoSubAccount, codec.StatusInvalidUsername,
			fmt.Sprintf("worker name %s has no sub-account: use <sub-account>.<worker>", quote(authName)))
	}
	if err := Check(sub); err != nil {
		return Name{}, refuse(Invalid, codec.StatusInvalidUsername,
			fmt.Sprintf("sub-account %s is invalid: use 1 to %d letters, digits or - _ : | ^ /", quote(sub), MaxLen))
	}
	return Name{SubAccount: sub, Worker: codec.SplitWorker(authName)}, nil
}

// Check reports why name is not a sub-account name the pool takes as it
// is, or nil. The error is for operators (config check), not for miners.
func Check(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("sub-account name is empty")
	case len(name) > MaxLen:
		return fmt.Errorf("sub-account name %s is longer than %d characters", quote(name), MaxLen)
	case strings.Contains(name, "."):
		return fmt.Errorf("sub-account name %s contains a dot, which ends the sub-account part of a worker name", quote(name))
	case codec.FilterName(name) != name:
		return fmt.Errorf("sub-account name %s has characters the pool drops (allowed: letters, digits and - _ : | ^ /)", quote(name))
	}
	return nil
}

// quote shows a miner-supplied string safely in one line and within a
// length a miner's status page can display, in ASCII because miner
// firmware shows little else.
func quote(s string) string {
	const limit = 40
	if len(s) > limit {
		return strconv.QuoteToASCII(s[:limit]) + "..."
	}
	return strconv.QuoteToASCII(s)
}

// Reason classifies a refusal, for logs and metrics labels.
type Reason string

// Refusal reasons.
const (
	NoSubAccount Reason = "no_sub_account" // authorize name without a dot
	Invalid      Reason = "invalid"        // sub-account breaks the name rule
	NotAllowed   Reason = "not_allowed"    // not on the allow-list
	CapReached   Reason = "cap_reached"    // the listener has max sub-accounts open
)

// Refusal is an authorize answered with an error: Code and Msg go to the
// miner as the Stratum error, Reason to logs and metrics.
type Refusal struct {
	Reason Reason
	Code   codec.Status
	Msg    string
}

func (r *Refusal) Error() string { return r.Msg }

func refuse(reason Reason, code codec.Status, msg string) *Refusal {
	return &Refusal{Reason: reason, Code: code, Msg: msg}
}

// AllowList decides which valid sub-accounts may use a listener. The zero
// value (and a nil *AllowList) allows every name.
type AllowList struct {
	names   map[string]struct{}
	pattern *regexp.Regexp
}

// NewAllowList builds the list from exact names and an optional regular
// expression (Go syntax), which must match the whole name: "cust[0-9]+"
// admits "cust7" but not "xcust7" or "cust7x". A name passes when either
// admits it; with neither set every name passes.
func NewAllowList(names []string, pattern string) (*AllowList, error) {
	a := &AllowList{}
	for _, n := range names {
		if err := Check(n); err != nil {
			return nil, fmt.Errorf("allow-list: %w", err)
		}
		if a.names == nil {
			a.names = make(map[string]struct{}, len(names))
		}
		a.names[n] = struct{}{}
	}
	if pattern != "" {
		re, err := CompilePattern(pattern)
		if err != nil {
			return nil, err
		}
		a.pattern = re
	}
	return a, nil
}

// CompilePattern compiles an allow pattern anchored at both ends.
func CompilePattern(pattern string) (*regexp.Regexp, error) {
	// The pattern alone first, so an error quotes what the operator wrote
	// rather than the anchored form.
	if _, err := regexp.Compile(pattern); err != nil {
		return nil, fmt.Errorf("allow_pattern %q: %w", pattern, err)
	}
	return regexp.MustCompile(`^(?:` + pattern + `)$`), nil
}

// Open reports whether the list admits every name.
func (a *AllowList) Open() bool { return a == nil || (a.names == nil && a.pattern == nil) }

// Allows reports whether sub may use the listener.
func (a *AllowList) Allows(sub string) bool {
	if a.Open() {
		return true
	}
	if _, ok := a.names[sub]; ok {
		return true
	}
	return a.pattern != nil && a.pattern.MatchString(sub)
}

// Admit is Split followed by the allow-list: the name a miner may work
// under on this listener, or the refusal to send it. The cap is the Set's.
func (a *AllowList) Admit(authName string) (Name, *Refusal) {
	n, r := Split(authName)
	if r != nil {
		return Name{}, r
	}
	if !a.Allows(n.SubAccount) {
		return Name{}, refuse(NotAllowed, codec.StatusUnauthorized,
			fmt.Sprintf("sub-account %s is not allowed on this agent", quote(n.SubAccount)))
	}
	return n, nil
}
