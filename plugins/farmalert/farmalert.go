// Package farmalert is the "farm-watch" plugin: it tells someone when miners
// go offline or come back, when the farm's hashrate drops, when a pool link
// stays down and when miners fail over, by posting to webhooks (Telegram bot
// API, Slack or Mattermost incoming webhooks, or a generic JSON body).
//
//	[[plugins]]
//	name = "farm-watch"
//	batch_window = "15s"
//	  [[plugins.webhook]]
//	  format = "telegram"
//	  url = "https://api.telegram.org/bot<token>/sendMessage"
//	  chat_id = "-1001234567890"
//
// The events come from the core's known-miners registry (internal/farmwatch)
// through plugins.Env.Farm; the plugin has no hook on the share path. Every
// webhook has its own goroutine and bounded queue: events that arrive within
// batch_window become one message (200 miners behind a dead switch are one
// post, not 200), posts to one webhook are at least min_interval apart, and a
// failed post is retried with exponential backoff. None of this can block the
// registry's sweep, let alone a miner.
//
// The plugin is instantiated once per listener, but instances built from the
// same [[plugins]] table share one set of senders, so a farm with several
// listeners still gets one message per batch.
package farmalert

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/btcagent/btcagent/internal/farmwatch"
	"github.com/btcagent/btcagent/plugins"
	"github.com/sirupsen/logrus"
)

// Name is the plugin's registry name.
const Name = "farm-watch"

// Webhook formats.
const (
	FormatJSON     = "json"
	FormatTelegram = "telegram"
	FormatSlack    = "slack" // also Mattermost: both take {"text": ...}
)

var formats = []string{FormatJSON, FormatTelegram, FormatSlack}

func init() {
	plugins.Register(plugins.Info{
		Name:        Name,
		Description: "alerts on miners going offline or back, hashrate drops, pool links down and failovers, by webhook (Telegram, Slack/Mattermost, JSON)",
		New:         func() plugins.Plugin { return new(FarmWatch) },
	})
}

// FarmWatch is the plugin and its options.
type FarmWatch struct {
	Events      []string      `toml:"events"`       // kinds to send; default all
	BatchWindow time.Duration `toml:"batch_window"` // events within this window make one message
	MinInterval time.Duration `toml:"min_interval"` // at least this long between two posts to one webhook
	QueueSize   int           `toml:"queue_size"`   // events waiting per webhook; the oldest are dropped past it
	Retries     int           `toml:"retries"`      // attempts after the first failed one
	RetryMin    time.Duration `toml:"retry_min"`    // first backoff; doubles up to retry_max
	RetryMax    time.Duration `toml:"retry_max"`
	Timeout     time.Duration `toml:"timeout"`   // per HTTP request
	MaxLines    int           `toml:"max_lines"` // miners listed by name in one message
	Webhooks    []Webhook     `toml:"webhook"`   // [[plugins.webhook]]

	kinds map[farmwatch.Kind]bool
	key   string
	grp   *group
	env   plugins.Env
	once  sync.Once
}

// Webhook is one destination.
type Webhook struct {
	URL    string `toml:"url"`     // secret: only scheme and host are ever logged
	Format string `toml:"format"`  // json (default), telegram or slack
	ChatID string `toml:"chat_id"` // telegram: the chat, group or channel id
}

// Defaults.
const (
	DefaultBatchWindow = 10 * time.Second
	DefaultMinInterval = 30 * time.Second
	DefaultQueueSize   = 10000
	DefaultRetries     = 5
	DefaultRetryMin    = 2 * time.Second
	DefaultRetryMax    = 2 * time.Minute
	DefaultTimeout     = 10 * time.Second
	DefaultMaxLines    = 30
)

var (
	_ plugins.Provisioner = (*FarmWatch)(nil)
	_ plugins.Closer      = (*FarmWatch)(nil)
)

// PluginName implements plugins.Plugin.
func (*FarmWatch) PluginName() string { return Name }

// Provision checks the options and, in a running agent, joins (or starts)
// the senders shared by the instances of this table.
func (f *FarmWatch) Provision(env plugins.Env) error {
	if err := f.check(); err != nil {
		return err
	}
	f.env = env
	if env.Farm == nil {
		return nil // config check: nothing to send
	}
	f.grp = join(f, env)
	return nil
}

func (f *FarmWatch) check() error {
	setDur := func(p *time.Duration, def time.Duration, key string) error {
		switch {
		case *p < 0:
			return fmt.Errorf("%s must not be negative", key)
		case *p == 0:
			*p = def
		}
		return nil
	}
	for _, d := range []struct {
		p   *time.Duration
		def time.Duration
		key string
	}{
		{&f.BatchWindow, DefaultBatchWindow, "batch_window"}, {&f.MinInterval, DefaultMinInterval, "min_interval"},
		{&f.RetryMin, DefaultRetryMin, "retry_min"}, {&f.RetryMax, DefaultRetryMax, "retry_max"}, {&f.Timeout, DefaultTimeout, "timeout"},
	} {
		if err := setDur(d.p, d.def, d.key); err != nil {
			return err
		}
	}
	if f.RetryMax < f.RetryMin {
		return fmt.Errorf("retry_max %v is below retry_min %v", f.RetryMax, f.RetryMin)
	}
	if f.QueueSize < 0 || f.Retries < 0 || f.MaxLines < 0 {
		return fmt.Errorf("queue_size, retries and max_lines must not be negative")
	}
	if f.QueueSize == 0 {
		f.QueueSize = DefaultQueueSize
	}
	if f.Retries == 0 {
		f.Retries = DefaultRetries
	}
	if f.MaxLines == 0 {
		f.MaxLines = DefaultMaxLines
	}
	f.kinds = map[farmwatch.Kind]bool{}
	if len(f.Events) == 0 {
		for _, k := range farmwatch.Kinds {
			f.kinds[k] = true
		}
	}
	for _, e := range f.Events {
		if !slices.Contains(farmwatch.Kinds, farmwatch.Kind(e)) {
			return fmt.Errorf("events: unknown event %q (want some of %s)", e, kindList())
		}
		f.kinds[farmwatch.Kind(e)] = true
	}
	if len(f.Webhooks) == 0 {
		return fmt.Errorf("at least one [[plugins.webhook]] is required")
	}
	for i := range f.Webhooks {
		h := &f.Webhooks[i]
		if h.Format == "" {
			h.Format = FormatJSON
		}
		if !slices.Contains(formats, h.Format) {
			return fmt.Errorf("webhook[%d]: format %q is not one of %s", i, h.Format, strings.Join(formats, ", "))
		}
		u, err := url.Parse(h.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			// The URL itself is not repeated: it may hold a token.
			return fmt.Errorf("webhook[%d]: url must be an http:// or https:// address", i)
		}
		if h.Format == FormatTelegram && h.ChatID == "" {
			return fmt.Errorf("webhook[%d]: format telegram needs chat_id", i)
		}
		if h.Format != FormatTelegram && h.ChatID != "" {
			return fmt.Errorf("webhook[%d]: chat_id is only used with format telegram", i)
		}
	}
	// Instances of the same table share senders: the key is the options.
	b, _ := json.Marshal(f)
	f.key = string(b)
	return nil
}

func kindList() string {
	var s []string
	for _, k := range farmwatch.Kinds {
		s = append(s, string(k))
	}
	return strings.Join(s, ", ")
}

// Close leaves the shared senders; the last instance stops them.
func (f *FarmWatch) Close() error {
	f.once.Do(func() {
		if f.grp != nil {
			f.grp.leave(f.env.Listener)
		}
	})
	return nil
}

// ---- groups: one set of senders per [[plugins]] table ----

type groupKey struct {
	farm farmwatch.Events
	opts string
}

var (
	groupsMu sync.Mutex
	groups   = map[groupKey]*group{}
)

// group is what instances built from one table share: the subscription, the
// listeners it speaks for, and one sender per webhook.
type group struct {
	key       groupKey
	kinds     map[farmwatch.Kind]bool
	mu        sync.Mutex
	listeners map[string]int // listener -> instances
	refs      int
	cancel    func()
	senders   []*sender
	closeOnce sync.Once
	closed    chan struct{}
}

func join(f *FarmWatch, env plugins.Env) *group {
	groupsMu.Lock()
	defer groupsMu.Unlock()
	k := groupKey{env.Farm, f.key}
	g := groups[k]
	if g == nil {
		log := env.Log
		if log == nil {
			log = logrus.New()
		}
		// The senders speak for every listener of the table.
		log = log.WithField("listener", "all")
		g = &group{key: k, kinds: f.kinds, listeners: map[string]int{}, closed: make(chan struct{})}
		for _, h := range f.Webhooks {
			g.senders = append(g.senders, newSender(f, h, log))
		}
		g.cancel = env.Farm.Subscribe(g.deliver)
		groups[k] = g
		// An agent that stops does not close its chains: the registry's
		// end releases the senders instead.
		go func() {
			select {
			case <-env.Farm.Done():
				g.close()
			case <-g.closed:
			}
		}()
	}
	g.mu.Lock()
	g.listeners[env.Listener]++
	g.mu.Unlock()
	g.refs++
	return g
}

func (g *group) leave(listener string) {
	groupsMu.Lock()
	g.mu.Lock()
	if g.listeners[listener]--; g.listeners[listener] <= 0 {
		delete(g.listeners, listener)
	}
	g.mu.Unlock()
	g.refs--
	last := g.refs == 0
	groupsMu.Unlock()
	if last {
		g.close()
	}
}

// close ends the subscription and the senders (once).
func (g *group) close() {
	g.closeOnce.Do(func() {
		groupsMu.Lock()
		if groups[g.key] == g {
			delete(groups, g.key)
		}
		groupsMu.Unlock()
		close(g.closed)
		g.cancel()
		for _, s := range g.senders {
			s.stop()
		}
	})
}

// deliver runs on the registry's sweep goroutine: it filters and queues,
// and never waits.
func (g *group) deliver(evs []farmwatch.Event) {
	g.mu.Lock()
	keep := make([]farmwatch.Event, 0, len(evs))
	for _, e := range evs {
		if !g.kinds[e.Kind] {
			continue
		}
		// Farm-wide events have no listener; the others must be ours.
		if e.Listener != "" && g.listeners[e.Listener] == 0 {
			continue
		}
		keep = append(keep, e)
	}
	g.mu.Unlock()
	if len(keep) == 0 {
		return
	}
	for _, s := range g.senders {
		s.enqueue(keep)
	}
}
