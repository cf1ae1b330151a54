// Package plugins is btcagent's extension mechanism. A plugin registers itself
// by name in an init function (as CoreDNS and Caddy plugins do), is enabled by
// a [[plugins]] table in the config, and implements any of the hook
// interfaces below. The configured instances of each listener are compiled
// into a Chain that the owning actor runs synchronously: the miner's actor for
// connect, authorize and submit, the upstream actor for jobs, the coordinator
// for pool selection and stats. The core never imports a concrete plugin;
// plugins/all imports the built-ins.
package plugins

import (
	"fmt"
	"sort"
	"sync"

	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/farmwatch"
	"github.com/sirupsen/logrus"
)

// Plugin is a configured instance. The value returned by Info.New is also the
// plugin's options struct: exported fields with toml tags are decoded from the
// plugin's [[plugins]] table before Provision runs.
type Plugin interface {
	PluginName() string
}

// Info describes a registered plugin.
type Info struct {
	Name        string
	Description string // one line, shown by `btcagent plugins`
	New         func() Plugin
}

// Env is what a plugin instance learns about where it runs.
type Env struct {
	Listener string // listener name
	Port     int    // listener port
	PoolUser string // the listener's pool user
	Index    int    // position in the chain: the plugin's msg.Scratch slot
	Log      logrus.FieldLogger
	// Farm delivers the known-miners registry's events (miner offline and
	// back, hashrate drop, pool link down, failover); nil when the plugin is
	// only being checked (`btcagent config check`, Validate).
	Farm farmwatch.Events
}

// Provisioner is called once per instance after decoding; an error refuses the config.
type Provisioner interface {
	Provision(env Env) error
}

// Closer releases an instance's resources when its chain is replaced or stopped.
type Closer interface {
	Close() error
}

// Hook interfaces. A plugin implements the ones it needs.
type (
	// ConnectHook sees every new miner connection (before any byte is read).
	ConnectHook interface {
		OnConnect(*msg.MinerConnecting) msg.Verdict
	}
	// AuthorizeHook may rewrite the worker name or refuse the miner.
	AuthorizeHook interface {
		OnAuthorize(*msg.MinerAuthorizing) msg.Verdict
	}
	// SubmitHook may refuse a share before it costs uplink.
	SubmitHook interface {
		OnSubmit(*msg.ShareSubmitted) msg.Verdict
	}
	// JobHook sees each job once per upstream link before it is fanned out.
	JobHook interface {
		OnJob(*msg.JobArrived)
	}
	// SelectHook chooses the route (pool user and pool list) for a miner.
	SelectHook interface {
		OnSelect(*msg.UpstreamSelecting) msg.Verdict
	}
	// StatsHook receives the listener's stats once a minute.
	StatsHook interface {
		OnStats(*msg.StatsTick)
	}
	// RouteProvider declares extra routes a SelectHook may choose.
	RouteProvider interface {
		Routes() []msg.Route
	}
	// Rebalancer is asked periodically (by the coordinator) which placed
	// miners should move to another route, e.g. to keep a hashrate split.
	Rebalancer interface {
		Rebalance(loads []msg.MinerLoad) []msg.RouteMove
	}
	// MinerGoneHook is told when a miner's connection ends (state cleanup).
	MinerGoneHook interface {
		OnMinerGone(info *msg.MinerInfo)
	}
)

var (
	regMu    sync.RWMutex
	registry = map[string]Info{}
)

// Register adds a plugin; call it from an init function. A duplicate or
// empty name is a programming error and panics at start-up.
func Register(info Info) {
	if info.Name == "" || info.New == nil {
		panic("plugins: Register needs a name and a constructor")
	}
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := registry[info.Name]; dup {
		panic("plugins: duplicate plugin name " + info.Name)
	}
	registry[info.Name] = info
}

// Lookup finds a registered plugin.
func Lookup(name string) (Info, bool) {
	regMu.RLock()
	defer regMu.RUnlock()
	i, ok := registry[name]
	return i, ok
}

// List returns all registered plugins sorted by name.
func List() []Info {
	regMu.RLock()
	defer regMu.RUnlock()
	out := make([]Info, 0, len(registry))
	for _, i := range registry {
		out = append(out, i)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

// Instance is one configured plugin in a chain.
type Instance struct {
	Name     string
	Required bool
	Index    int
	Plugin   Plugin
}

// Build decodes and provisions the plugins that apply to one listener, in
// config order. Errors name the plugin and its table.
func Build(specs []config.PluginSpec, env Env) (*Chain, error) {
	c := &Chain{log: env.Log}
	for i := range specs {
		spec := &specs[i]
		if !appliesTo(spec, env.Port) {
			continue
		}
		info, ok := Lookup(spec.Name)
		if !ok {
			return nil, fmt.Errorf("plugins[%d]: unknown plugin %q (see `btcagent plugins`)", spec.Index, spec.Name)
		}
		p := info.New()
		if err := spec.Decode(p); err != nil {
			return nil, err
		}
		e := env
		e.Index = len(c.instances)
		if e.Log != nil {
			e.Log = e.Log.WithField("plugin", spec.Name)
		}
		if pr, ok := p.(Provisioner); ok {
			if err := pr.Provision(e); err != nil {
				return nil, fmt.Errorf("plugins[%d] (%s): %w", spec.Index, spec.Name, err)
			}
		}
		c.add(Instance{Name: spec.Name, Required: spec.Required, Index: e.Index, Plugin: p})
	}
	return c, nil
}

// Validate checks every spec against the registry without keeping instances
// (config check, reload dry-run).
func Validate(specs []config.PluginSpec, ports []int) error {
	for _, port := range ports {
		c, err := Build(specs, Env{Port: port, Log: logrus.New()})
		if err != nil {
			return err
		}
		c.Close()
	}
	return nil
}

func appliesTo(spec *config.PluginSpec, port int) bool {
	if len(spec.Listen) == 0 {
		return true
	}
	for _, p := range spec.Listen {
		if p == port {
			return true
		}
	}
	return false
}
