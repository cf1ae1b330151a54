package minersim

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// Transport names accepted in Config.Transport.
const (
	// TransportNetio reads every socket from this repository's own epoll
	// loop (actors/netio), the agent's miner-side I/O layer: no goroutine
	// and no read buffer per connection, and on Linux no Go netpoller or
	// scheduler work per read. The cheapest reader, hence cmd/minersim's
	// default. Not the library's: the loop holds a P while it waits, which
	// cmd/minersim makes up for with one more P, but a program that embeds
	// the simulator beside an agent (the tests) would lose a P to each
	// loop and starve.
	TransportNetio = "netio"
	// TransportNbio reads every socket from a few nbio epoll loops: no goroutine
	// and no read buffer per idle connection.
	TransportNbio = "nbio"
	// TransportGoroutine runs one reader goroutine with a 1 KB buffer per
	// connection; simpler, and a cross-check for the nbio numbers.
	TransportGoroutine = "goroutine"
)

// Config describes the simulated farm. Zero values select the documented
// defaults.
type Config struct {
	Target      string // host:port of the agent or the pool ("stratum+tcp://" is stripped)
	Miners      int    // number of miners (connections)
	ConnectRate int    // new connections per second; 0 = as fast as the dialers go
	User        string // authorize as "<User>.<WorkerPrefix><n>"
	// Names, when set, are the miners' authorize names, one each, used as
	// they are (User and WorkerPrefix are then ignored); Miners may be left
	// 0 and is then len(Names).
	Names        []string
	WorkerPrefix string // default "w"; n is zero-padded to the width of Miners-1 (min 3 digits)
	Password     string // default "x"
	UserAgent    string // default "cgminer/4.10.0"

	// VersionRolling sends mining.configure (BIP310) before subscribe and rolls
	// bits inside the granted mask; submits then carry a sixth parameter.
	VersionRolling bool
	// VersionMask is the mask requested in mining.configure (default 1fffe000).
	VersionMask uint32

	// Fast mode: one random share every ShareInterval per miner, varied by
	// ±Jitter (a fraction; default 0.2, negative means none).
	ShareInterval time.Duration
	Jitter        float64

	// Hash mode: really grind nonces and submit only shares that meet the
	// difficulty of their job. HashThreads goroutines serve all miners in turn.
	Hash        bool
	HashThreads int // default 1

	// MaxSharesPerMiner stops a miner after this many submits (0 = no limit).
	MaxSharesPerMiner int

	// JobTimestamp extracts the pool's write time from a job's coinb1 (for
	// example poolsim.JobTimestamp or HexStamp); it enables fan-out latency.
	JobTimestamp func(coinb1Hex string) (time.Time, bool)

	// OnShare, when set, is called once for every answered share (outside all
	// locks, from the goroutine that read the reply). Tests use it to check
	// that verdicts are matched to the right submit.
	OnShare func(ShareResult)

	// Transport is TransportNbio (default), TransportNetio or
	// TransportGoroutine.
	Transport string
	// Pollers is the number of epoll loops of the netio and nbio transports
	// (default 1).
	Pollers int
	// KernelArrival has the netio transport ask for the kernel's receive
	// time of every read (netio.Config.ReceiveTimestamps), and the fan-out
	// is then also measured to it (Summary.FanoutKernelP99). Other
	// transports ignore it.
	KernelArrival bool
	// DialConcurrency bounds parallel dials (default 32).
	DialConcurrency int
	// ReconnectMin and ReconnectMax bound the exponential backoff after a
	// dropped connection or failed dial (defaults 250ms and 30s).
	ReconnectMin, ReconnectMax time.Duration
	// HandshakeTimeout drops a connection that is not authorized in time
	// (default 30s).
	HandshakeTimeout time.Duration

	Logger logrus.FieldLogger
}

// ShareResult is one answered share, reported through Config.OnShare.
type ShareResult struct {
	Miner    int
	ID       uint64
	JobID    string
	Nonce    uint32
	Accepted bool
	Code     int // Stratum error code when rejected (0 if the peer gave none, -1 if unreadable)
	Latency  time.Duration
}

const (
	defaultShareInterval = 10 * time.Second
	defaultJitter        = 0.2
	defaultVersionMask   = 0x1fffe000
	defaultDialers       = 32
	defaultReconnectMin  = 250 * time.Millisecond
	defaultReconnectMax  = 30 * time.Second
	defaultHandshake     = 30 * time.Second
)

// withDefaults validates cfg and fills in defaults.
func (cfg Config) withDefaults() (Config, error) {
	cfg.Target = strings.TrimPrefix(cfg.Target, "stratum+tcp://")
	if cfg.Target == "" {
		return cfg, fmt.Errorf("minersim: Target is empty")
	}
	if len(cfg.Names) > 0 && cfg.Miners == 0 {
		cfg.Miners = len(cfg.Names)
	}
	if cfg.Miners <= 0 {
		return cfg, fmt.Errorf("minersim: Miners must be positive, got %d", cfg.Miners)
	}
	if len(cfg.Names) > 0 && len(cfg.Names) != cfg.Miners {
		return cfg, fmt.Errorf("minersim: %d Names for %d Miners", len(cfg.Names), cfg.Miners)
	}
	if cfg.ConnectRate < 0 {
		return cfg, fmt.Errorf("minersim: ConnectRate must not be negative")
	}
	if cfg.WorkerPrefix == "" {
		cfg.WorkerPrefix = "w"
	}
	if cfg.Password == "" {
		cfg.Password = "x"
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "cgminer/4.10.0"
	}
	if cfg.VersionMask == 0 {
		cfg.VersionMask = defaultVersionMask
	}
	if cfg.ShareInterval <= 0 {
		cfg.ShareInterval = defaultShareInterval
	}
	switch {
	case cfg.Jitter == 0:
		cfg.Jitter = defaultJitter
	case cfg.Jitter < 0:
		cfg.Jitter = 0
	case cfg.Jitter > 1:
		return cfg, fmt.Errorf("minersim: Jitter %g is above 1", cfg.Jitter)
	}
	if cfg.HashThreads <= 0 {
		cfg.HashThreads = 1
	}
	if cfg.MaxSharesPerMiner < 0 {
		return cfg, fmt.Errorf("minersim: MaxSharesPerMiner must not be negative")
	}
	switch cfg.Transport {
	case "":
		cfg.Transport = TransportNbio
	case TransportNetio, TransportNbio, TransportGoroutine:
	default:
		return cfg, fmt.Errorf("minersim: unknown transport %q (want %q, %q or %q)", cfg.Transport, TransportNetio, TransportNbio, TransportGoroutine)
	}
	if cfg.Pollers <= 0 {
		cfg.Pollers = 1
	}
	if cfg.DialConcurrency <= 0 {
		cfg.DialConcurrency = defaultDialers
	}
	cfg.DialConcurrency = min(cfg.DialConcurrency, cfg.Miners)
	if cfg.ReconnectMin <= 0 {
		cfg.ReconnectMin = defaultReconnectMin
	}
	if cfg.ReconnectMax <= 0 {
		cfg.ReconnectMax = defaultReconnectMax
	}
	cfg.ReconnectMax = max(cfg.ReconnectMax, cfg.ReconnectMin)
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = defaultHandshake
	}
	if cfg.Logger == nil {
		l := logrus.New()
		l.SetOutput(os.Stderr)
		l.SetLevel(logrus.WarnLevel)
		cfg.Logger = l
	}
	return cfg, nil
}

// WorkerName is the name miner i authorizes with: "<user>.<prefix><n>", n
// zero-padded to the width of miners-1 but at least 3 digits, so that names
// sort in miner order on the pool's dashboards.
func WorkerName(user, prefix string, miners, i int) string {
	width := max(3, len(strconv.Itoa(max(miners-1, 0))))
	n := strconv.Itoa(i)
	if len(n) < width {
		n = strings.Repeat("0", width-len(n)) + n
	}
	return user + "." + prefix + n
}
