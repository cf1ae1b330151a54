package plugins

import (
	"fmt"
	"sync/atomic"

	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/codec"
	"github.com/sirupsen/logrus"
)

// Chain is one listener's compiled plugin list: a slice per hook, in config
// order. It is immutable after Build and safe to share between actors; each
// plugin must be safe for concurrent use (per-miner state goes in msg.Scratch).
type Chain struct {
	instances []Instance
	connect   []hook[ConnectHook]
	authorize []hook[AuthorizeHook]
	submit    []hook[SubmitHook]
	job       []hook[JobHook]
	sel       []hook[SelectHook]
	stats     []hook[StatsHook]
	gone      []hook[MinerGoneHook]
	log       logrus.FieldLogger
	// Errors counts plugin panics (isolated, logged) for metrics.
	Errors atomic.Int64
}

type hook[T any] struct {
	inst *Instance
	h    T
}

func (c *Chain) add(in Instance) {
	c.instances = append(c.instances, in)
	inst := &c.instances[len(c.instances)-1]
	p := in.Plugin
	if h, ok := p.(ConnectHook); ok {
		c.connect = append(c.connect, hook[ConnectHook]{inst, h})
	}
	if h, ok := p.(AuthorizeHook); ok {
		c.authorize = append(c.authorize, hook[AuthorizeHook]{inst, h})
	}
	if h, ok := p.(SubmitHook); ok {
		c.submit = append(c.submit, hook[SubmitHook]{inst, h})
	}
	if h, ok := p.(JobHook); ok {
		c.job = append(c.job, hook[JobHook]{inst, h})
	}
	if h, ok := p.(SelectHook); ok {
		c.sel = append(c.sel, hook[SelectHook]{inst, h})
	}
	if h, ok := p.(StatsHook); ok {
		c.stats = append(c.stats, hook[StatsHook]{inst, h})
	}
	if h, ok := p.(MinerGoneHook); ok {
		c.gone = append(c.gone, hook[MinerGoneHook]{inst, h})
	}
}

// NewChain builds a chain from ready instances (tests, embedding).
func NewChain(log logrus.FieldLogger, instances ...Instance) *Chain {
	c := &Chain{log: log}
	c.instances = make([]Instance, 0, len(instances))
	for i, in := range instances {
		in.Index = i
		c.add(in)
	}
	return c
}

// Instances lists the chain's plugins in order.
func (c *Chain) Instances() []Instance {
	if c == nil {
		return nil
	}
	return c.instances
}

// Len is the number of plugins.
func (c *Chain) Len() int {
	if c == nil {
		return 0
	}
	return len(c.instances)
}

// Close calls Close on instances that have it.
func (c *Chain) Close() {
	if c == nil {
		return
	}
	for _, in := range c.instances {
		if cl, ok := in.Plugin.(Closer); ok {
			_ = cl.Close()
		}
	}
}

// run calls one hook with panic isolation. A panicking plugin is logged and
// counted; the message continues as if the plugin had passed it, unless the
// plugin is required, in which case the panic becomes a Reject.
func (c *Chain) run(inst *Instance, hookName string, f func() msg.Verdict) (v msg.Verdict, failed bool) {
	defer func() {
		if r := recover(); r != nil {
			c.Errors.Add(1)
			if c.log != nil {
				c.log.WithFields(logrus.Fields{"plugin": inst.Name, "hook": hookName, "panic": fmt.Sprint(r)}).Error("plugin panicked; isolated")
			}
			failed = true
			if inst.Required {
				v = msg.Reject
			} else {
				v = msg.Continue
			}
		}
	}()
	return f(), false
}

const requiredFailed = "required plugin failed"

// verdictChain runs hooks in order until one returns a verdict other than
// Continue. failed is called when a required plugin's panic became a Reject,
// so the caller can say why in the message.
func verdictChain[T any](c *Chain, hooks []hook[T], name string, call func(T) msg.Verdict, failed func(plugin string)) msg.Verdict {
	if c == nil {
		return msg.Continue
	}
	for i := range hooks {
		h := &hooks[i]
		v, panicked := c.run(h.inst, name, func() msg.Verdict { return call(h.h) })
		if panicked && v == msg.Reject && failed != nil {
			failed(h.inst.Name)
		}
		if v != msg.Continue {
			return v
		}
	}
	return msg.Continue
}

// OnConnect runs the connect hooks; the first non-Continue verdict wins.
func (c *Chain) OnConnect(m *msg.MinerConnecting) msg.Verdict {
	if c == nil {
		return msg.Continue
	}
	return verdictChain(c, c.connect, "connect", func(h ConnectHook) msg.Verdict { return h.OnConnect(m) },
		func(p string) { m.Text = requiredFailed + ": " + p })
}

// OnAuthorize runs the authorize hooks in order.
func (c *Chain) OnAuthorize(m *msg.MinerAuthorizing) msg.Verdict {
	if c == nil {
		return msg.Continue
	}
	return verdictChain(c, c.authorize, "authorize", func(h AuthorizeHook) msg.Verdict { return h.OnAuthorize(m) },
		func(p string) { m.Code, m.Text = codec.StatusInternalError, requiredFailed+": "+p })
}

// OnSubmit runs the submit hooks in order.
func (c *Chain) OnSubmit(m *msg.ShareSubmitted) msg.Verdict {
	if c == nil {
		return msg.Continue
	}
	return verdictChain(c, c.submit, "submit", func(h SubmitHook) msg.Verdict { return h.OnSubmit(m) },
		func(p string) { m.Code, m.Text = codec.StatusInternalError, requiredFailed+": "+p })
}

// HasSubmitHooks lets the share path skip building the hook message.
func (c *Chain) HasSubmitHooks() bool { return c != nil && len(c.submit) > 0 }

// OnJob runs the job hooks.
func (c *Chain) OnJob(m *msg.JobArrived) {
	if c == nil {
		return
	}
	for i := range c.job {
		h := &c.job[i]
		c.run(h.inst, "job", func() msg.Verdict { h.h.OnJob(m); return msg.Continue })
	}
}

// OnSelect runs the selection hooks; later plugins see earlier choices.
func (c *Chain) OnSelect(m *msg.UpstreamSelecting) msg.Verdict {
	if c == nil {
		return msg.Continue
	}
	return verdictChain(c, c.sel, "select", func(h SelectHook) msg.Verdict { return h.OnSelect(m) }, nil)
}

// OnStats runs the stats hooks.
func (c *Chain) OnStats(m *msg.StatsTick) {
	if c == nil {
		return
	}
	for i := range c.stats {
		h := &c.stats[i]
		c.run(h.inst, "stats", func() msg.Verdict { h.h.OnStats(m); return msg.Continue })
	}
}

// OnMinerGone runs the cleanup hooks.
func (c *Chain) OnMinerGone(info *msg.MinerInfo) {
	if c == nil {
		return
	}
	for i := range c.gone {
		h := &c.gone[i]
		c.run(h.inst, "gone", func() msg.Verdict { h.h.OnMinerGone(info); return msg.Continue })
	}
}

// Routes collects the extra routes every RouteProvider declares.
func (c *Chain) Routes() []msg.Route {
	if c == nil {
		return nil
	}
	var out []msg.Route
	for _, in := range c.instances {
		if rp, ok := in.Plugin.(RouteProvider); ok {
			out = append(out, rp.Routes()...)
		}
	}
	return out
}

// HasRebalancers reports whether any plugin rebalances routes.
func (c *Chain) HasRebalancers() bool {
	if c == nil {
		return false
	}
	for _, in := range c.instances {
		if _, ok := in.Plugin.(Rebalancer); ok {
			return true
		}
	}
	return false
}

// Rebalance collects the moves every Rebalancer asks for (later plugins win
// for the same miner).
func (c *Chain) Rebalance(loads []msg.MinerLoad) []msg.RouteMove {
	if c == nil {
		return nil
	}
	var out []msg.RouteMove
	for i := range c.instances {
		in := &c.instances[i]
		rb, ok := in.Plugin.(Rebalancer)
		if !ok {
			continue
		}
		var moves []msg.RouteMove
		c.run(in, "rebalance", func() msg.Verdict { moves = rb.Rebalance(loads); return msg.Continue })
		out = append(out, moves...)
	}
	return out
}
