// Package sharelog is the example plugin of docs/PLUGINS.md: "sharelog"
// appends one JSON line per share a miner submits to a file, for audits and
// for debugging a miner's firmware. It shows the whole life of a plugin:
// registration in init, options decoded into the struct, Provision opening a
// resource (and refusing bad options), a hook that must be safe for
// concurrent use, and Close releasing the resource.
//
// It is not part of plugins/all: link it into a build with
//
//	import _ "github.com/btcagent/btcagent/plugins/example/sharelog"
//
// and enable it with
//
//	[[plugins]]
//	name = "sharelog"
//	path = "/var/log/btcagent/shares.jsonl"
//	every = 10   # log one share in ten (default 1: all)
//
// Place it after share-check to log only shares that passed the local checks
// (a plugin that rejects stops the chain), or before it to log everything.
package sharelog

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/plugins"
)

// Name is the plugin's registry name.
const Name = "sharelog"

func init() {
	plugins.Register(plugins.Info{
		Name:        Name,
		Description: "example: appends one JSON line per submitted share to a file",
		New:         func() plugins.Plugin { return new(ShareLog) },
	})
}

// ShareLog is the plugin; its exported fields are its options.
type ShareLog struct {
	Path  string `toml:"path"`  // file to append to (created if missing)
	Every int    `toml:"every"` // log one share in Every; 0 or 1 logs all

	listener string
	seen     atomic.Uint64 // shares seen, for Every

	// Many miners' actors call OnSubmit at once: the file and the buffer are
	// shared, so writes are serialised.
	mu  sync.Mutex
	f   *os.File
	buf []byte
}

// Record is one line of the log.
type Record struct {
	Time       time.Time `json:"time"`
	Listener   string    `json:"listener"`
	Worker     string    `json:"worker"`
	Remote     string    `json:"remote"`
	Job        string    `json:"job"`
	ExtraNonce string    `json:"extranonce"` // the miner's EN1 and EN2, as it hashed them
	NTime      string    `json:"ntime"`
	Nonce      string    `json:"nonce"`
	Version    string    `json:"version_bits,omitempty"`
	Difficulty float64   `json:"difficulty"`
}

// Interface guards: the compiler checks the plugin has the hooks it claims.
var (
	_ plugins.Provisioner = (*ShareLog)(nil)
	_ plugins.SubmitHook  = (*ShareLog)(nil)
	_ plugins.Closer      = (*ShareLog)(nil)
)

// PluginName implements plugins.Plugin.
func (*ShareLog) PluginName() string { return Name }

// Provision checks the options and opens the file; an error here refuses
// the config, naming the plugin and its table.
func (s *ShareLog) Provision(env plugins.Env) error {
	if s.Path == "" {
		return fmt.Errorf("path is required")
	}
	if s.Every < 0 {
		return fmt.Errorf("every = %d: must not be negative", s.Every)
	}
	f, err := os.OpenFile(s.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("open share log: %w", err)
	}
	s.f, s.listener = f, env.Listener
	return nil
}

// OnSubmit logs the share and lets it pass: a logger never decides.
func (s *ShareLog) OnSubmit(m *msg.ShareSubmitted) msg.Verdict {
	n := s.seen.Add(1)
	if s.Every > 1 && (n-1)%uint64(s.Every) != 0 {
		return msg.Continue
	}
	rec := Record{
		Time: m.Now, Listener: s.listener, Job: m.Job.ID, Difficulty: m.Difficulty,
		ExtraNonce: fmt.Sprintf("%x%08x", m.MinerEN1, m.ExtraNonce2),
		NTime:      codec.Hex32(m.NTime), Nonce: codec.Hex32(m.Nonce),
	}
	if m.Info != nil {
		rec.Worker, rec.Remote = m.Info.Worker, m.Info.Remote.String()
	}
	if m.HasVersion {
		rec.Version = codec.Hex32(m.VersionBits)
	}
	line, err := json.Marshal(rec)
	if err != nil {
		return msg.Continue // cannot happen for this struct; never block shares over a log line
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return msg.Continue // closed: the chain is being replaced
	}
	s.buf = append(append(s.buf[:0], line...), '\n')
	// One write per line with O_APPEND: lines from several agents sharing
	// the file do not interleave. A failed write is not the miner's problem.
	_, _ = s.f.Write(s.buf)
	return msg.Continue
}

// Close closes the file; the chain calls it when it is replaced or stopped.
func (s *ShareLog) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	if err != nil {
		return fmt.Errorf("close share log: %w", err)
	}
	return nil
}
