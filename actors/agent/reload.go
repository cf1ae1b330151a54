package agent

import (
	"fmt"
	"net"
	"reflect"
	"strconv"
	"sync"
	"time"

	"github.com/btcagent/btcagent/actors/stats"
	"github.com/btcagent/btcagent/actors/wire"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/plugins"
)

// ReloadResult says what Reload did, by listener name.
type ReloadResult struct {
	Started   []string // new listeners
	Stopped   []string // removed listeners (their miners were disconnected)
	Restarted []string // pools, plugins or options changed: new coordinator, miners asked to reconnect
	Unchanged []string // left alone; their miners noticed nothing
	Ignored   []string // settings that only take effect after a process restart
}

// Reload timing.
const (
	// drainTimeout bounds the wait for a retired coordinator's miners to go.
	drainTimeout = 10 * time.Second
	// readyTimeoutCap bounds the wait for a replacement coordinator's first
	// pool link before the old one's miners are moved anyway.
	readyTimeoutCap = 30 * time.Second
)

// Reload applies a new, validated configuration to the running agent without
// a restart. Listeners are matched by port:
//
//   - a listener whose own table, plugins (the [[plugins]] tables that apply
//     to its port, in order) and the shared [upstream], [miner] and [outage]
//     options are unchanged keeps running untouched;
//   - a new port is opened; a removed port is closed and its miners are
//     disconnected;
//   - any other listener is restarted: a new coordinator with the new pool
//     list and plugin chain takes over the open socket, and once it has a
//     ready pool link (or after a bounded wait) the old coordinator's miners
//     are sent client.reconnect and come back to the new one. The socket is
//     never closed, so reconnecting miners are not refused.
//
// Everything that can fail (plugin provisioning, binding new ports) is done
// before anything changes: an error leaves the agent exactly as it was.
// miner.write_buffer_bytes belongs to the shared event loop and is reported
// in Ignored. The logger's level is the caller's (it owns the logger).
func (a *Agent) Reload(cfg *config.Config) (*ReloadResult, error) {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()

	a.mu.RLock()
	old, current := a.cfg, append([]*Listener(nil), a.listeners...)
	a.mu.RUnlock()

	res := &ReloadResult{}
	if cfg.Miner.WriteBufferBytes != old.Miner.WriteBufferBytes {
		res.Ignored = append(res.Ignored, "miner.write_buffer_bytes")
	}
	shared := !reflect.DeepEqual(old.Upstream, cfg.Upstream) || !reflect.DeepEqual(old.Outage, cfg.Outage) ||
		!sameMinerOptions(old.Miner, cfg.Miner)

	byPort := make(map[int]*Listener, len(current))
	for _, l := range current {
		byPort[l.Cfg.Port] = l
	}
	type change struct {
		lc    config.Listener
		old   *Listener // nil: new port
		chain *plugins.Chain
		ln    net.Listener // the socket of a new port
		st    *stats.Listener
		repl  *Listener // the running replacement, once committed
	}
	var changes []*change
	keep := make(map[int]bool)
	var next []*Listener
	for _, lc := range cfg.Listen {
		ol := byPort[lc.Port]
		if ol != nil {
			keep[lc.Port] = true
			if !shared && reflect.DeepEqual(ol.Cfg, lc) && samePlugins(old, cfg, lc.Port) {
				next = append(next, ol)
				res.Unchanged = append(res.Unchanged, lc.Name)
				continue
			}
		}
		changes = append(changes, &change{lc: lc, old: ol})
	}
	var removed []*Listener
	for _, l := range current {
		if !keep[l.Cfg.Port] {
			removed = append(removed, l)
		}
	}

	// Prepare: everything that can fail, with nothing running changed yet.
	undo := func() {
		for _, c := range changes {
			if c.chain != nil {
				c.chain.Close()
			}
			if c.ln != nil && c.old == nil {
				_ = c.ln.Close()
			}
		}
	}
	for _, c := range changes {
		chain, err := a.buildChain(cfg, c.lc)
		if err != nil {
			undo()
			return nil, err
		}
		c.chain = chain
		if c.old == nil {
			ln, err := a.listen(c.lc)
			if err != nil {
				undo()
				return nil, err
			}
			c.ln = ln
		} else if c.old.Cfg.Address != c.lc.Address {
			// A new bind address for the same port cannot be opened while
			// the old socket holds the port; refuse rather than risk losing
			// the port halfway through.
			undo()
			return nil, fmt.Errorf("listener %s: the address of port %d changed from %s to %s; that needs a restart",
				c.lc.Name, c.lc.Port, c.old.Cfg.Address, c.lc.Address)
		}
		// Counters carry over when the name (the metrics label) stays.
		if c.old != nil && c.old.Cfg.Name == c.lc.Name {
			c.st = c.old.Stats
		} else {
			c.st = stats.NewListener(c.lc.Name, c.lc.Port)
		}
	}

	// Commit. Coordinators of changed listeners start now and dial their pools.
	var commitErr error
	for _, c := range changes {
		suffix := ""
		if c.old != nil {
			suffix = "-r" + strconv.FormatUint(a.restarts.Add(1), 10)
		}
		l, err := a.newListener(cfg, c.lc, c.chain, c.st, suffix)
		if err != nil {
			// Spawning fails only on a duplicate actor name, which the
			// suffix rules out; should it happen, that listener stays as it was.
			commitErr = err
			c.chain.Close()
			if c.ln != nil {
				_ = c.ln.Close()
			}
			if c.old != nil {
				next = append(next, c.old)
			}
			continue
		}
		c.repl = l
		if c.old == nil {
			a.serve(l, c.ln)
			res.Started = append(res.Started, c.lc.Name)
		} else {
			l.port = c.old.port
			res.Restarted = append(res.Restarted, c.lc.Name)
		}
		next = append(next, l)
	}
	for _, l := range removed {
		res.Stopped = append(res.Stopped, l.Cfg.Name)
	}
	a.mu.Lock()
	a.cfg = cfg
	a.farm.SetOptions(cfg.FarmWatch)
	a.listeners = orderLike(cfg.Listen, next)
	a.mu.Unlock()

	// Retire the old coordinators in parallel: each waits for its
	// replacement's first pool link, which may take a dial timeout.
	var wg sync.WaitGroup
	for _, c := range changes {
		if c.old == nil || c.repl == nil {
			continue
		}
		wg.Add(1)
		go func(old, repl *Listener) {
			defer wg.Done()
			a.handOver(cfg, old, repl)
		}(c.old, c.repl)
	}
	for _, l := range removed {
		wg.Add(1)
		go func(l *Listener) {
			defer wg.Done()
			l.port.close()
			a.retire(l, "listener removed from the config", false)
		}(l)
	}
	wg.Wait()
	return res, commitErr
}

// handOver moves the socket of old to repl and then the miners.
func (a *Agent) handOver(cfg *config.Config, old, repl *Listener) {
	old.port.swap(repl)
	wait := cfg.Upstream.DialTimeout + cfg.Upstream.HandshakeTimeout
	if wait > readyTimeoutCap || wait <= 0 {
		wait = readyTimeoutCap
	}
	// A multi-user listener has no links until its miners come back, so
	// there is nothing to wait for; their sub-accounts open as they do.
	if !repl.Cfg.MultiUser && !repl.waitReady(wait) {
		a.log.WithField("listener", repl.Cfg.Name).Warn("reload: no pool link of the new pool list is ready yet; moving the miners anyway (outage policy applies)")
	}
	a.retire(old, "listener reconfigured", true)
}

// retire disconnects a coordinator's miners, waits until they are gone (so
// that their session ids are freed by the coordinator that owns them), then
// stops it and closes its plugins.
func (a *Agent) retire(l *Listener, reason string, reconnect bool) {
	log := a.log.WithField("listener", l.Cfg.Name)
	a.system.Root.Send(l.Coordinator, &wire.DisconnectAll{Reason: reason, Reconnect: reconnect})
	deadline := time.Now().Add(drainTimeout)
	for {
		s, err := l.Snapshot(time.Second)
		if err != nil || s.Miners == 0 {
			break
		}
		if time.Now().After(deadline) {
			log.WithField("miners", s.Miners).Warn("reload: miners of the old coordinator did not go in time; stopping it anyway")
			break
		}
		time.Sleep(20 * time.Millisecond) // polling a bounded drain, as WaitReady does
	}
	if err := a.system.Root.StopFuture(l.Coordinator).Wait(); err != nil {
		log.WithError(err).Warn("reload: stopping the old coordinator")
	}
	l.Chain.Close()
}

// waitReady reports whether the listener got a ready pool link within d.
func (l *Listener) waitReady(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if s, err := l.Snapshot(time.Second); err == nil {
			for _, u := range s.Upstreams {
				if u.Ready {
					return true
				}
			}
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond) // polling a bounded wait, as WaitReady does
	}
}

// samePlugins compares the plugin tables that apply to port, in order.
func samePlugins(a, b *config.Config, port int) bool {
	pa, pb := a.PluginsFor(port), b.PluginsFor(port)
	if len(pa) != len(pb) {
		return false
	}
	for i := range pa {
		if pa[i].Name != pb[i].Name || pa[i].Required != pb[i].Required || !reflect.DeepEqual(pa[i].Options(), pb[i].Options()) {
			return false
		}
	}
	return true
}

// sameMinerOptions compares what a listener's sessions use; the write buffer
// is the event loop's and cannot change without a restart.
func sameMinerOptions(a, b config.MinerOptions) bool {
	a.WriteBufferBytes, b.WriteBufferBytes = 0, 0
	return a == b
}

// orderLike sorts listeners into the order of the config's [[listen]] tables.
func orderLike(lcs []config.Listener, ls []*Listener) []*Listener {
	byPort := make(map[int]*Listener, len(ls))
	for _, l := range ls {
		byPort[l.Cfg.Port] = l
	}
	out := make([]*Listener, 0, len(ls))
	for _, lc := range lcs {
		if l := byPort[lc.Port]; l != nil {
			out = append(out, l)
		}
	}
	return out
}
