package poolsim

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math/bits"
	"strconv"
	"time"

	"github.com/btcagent/btcagent/codec/sv2/noise"
	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/sirupsen/logrus"
)

// Validation modes for Config.Validate.
const (
	ValidateFull       = "full"       // real sha256d against the share target
	ValidateStructural = "structural" // every check except the hash
)

// Defaults applied by Start to zero-valued Config fields.
const (
	DefaultListen         = "127.0.0.1:3334"
	DefaultNotifyInterval = 30 * time.Second
	DefaultBlockEvery     = 10
	DefaultBranches       = 12
	DefaultVersionMask    = 0x1fffe000
	DefaultEN2Size        = 8
	DefaultDiff           = 16384
	DefaultShareTarget    = 10 * time.Second
	DefaultStatsInterval  = 2 * time.Second
	DefaultWriteTimeout   = 10 * time.Second

	// MaxSilence is the longest the pool goes without sending a new job:
	// real miners stop hashing on ~120 s old work and the Go agent drops a
	// link after 60 s without a byte, so the job period is capped here.
	MaxSilence = 60 * time.Second

	// LiveJobs is how many recent jobs accept shares; older ids get 21.
	LiveJobs = 16

	// MaxNTimeAhead is how far above the job's nTime a share may roll.
	MaxNTimeAhead = 7200
)

// Config configures a Pool. The zero value of every field means its default.
type Config struct {
	Listen         string        // listen address; tests use "127.0.0.1:0"
	NotifyInterval time.Duration // new job period (capped at MaxSilence), default 30s
	BlockEvery     int           // every Nth periodic job is a new block (new prevhash, clean_jobs true); default 10
	Branches       int           // merkle branches per job, default 12 (notify ~1.4 KB); negative means none
	Validate       string        // ValidateFull (default) or ValidateStructural
	VersionMask    uint32        // granted version-rolling mask, default 0x1fffe000
	EN2Size        int           // extranonce2 size announced, 1..8, default 8 (agents require 8)
	DefaultDiff    uint64        // start difficulty of agent workers and miners, power of two, default 16384
	FixedDiff      uint64        // if non-zero: no vardiff, everybody at this difficulty
	JSONDiff       float64       // if non-zero: the JSON set_difficulty value and the start difficulty of every worker (e.g. 0.001 for CPU miners) until a SET_DIFF changes it
	Vardiff        bool          // per-worker vardiff, powers of two, aiming at ShareTarget per share
	ShareTarget    time.Duration // vardiff target, default 10s

	// Subres is kept for the documented API: advertising "subres" is the
	// default and the zero Config must mean the default, so a bool cannot
	// turn it off. Set NoSubres to stop advertising it.
	Subres   bool
	NoSubres bool // advertise only "verrol" (a pre-2020 sserver); agents then answer shares optimistically

	StatsFile     string        // if set, the Stats JSON is written there every StatsInterval and on Close
	StatsInterval time.Duration // default 2s
	StatsAddr     string        // if set, GET /stats serves the Stats JSON on this address
	WriteTimeout  time.Duration // a connection whose peer stops reading for this long is closed; default 10s
	Seed          uint64        // random seed for job contents; 0 picks one
	Logger        logrus.FieldLogger

	// SV2 mode: if SV2Listen is set, a second listener speaks Stratum V2
	// (Noise handshake, extended and standard channels, docs/SV2.md).
	SV2Listen          string
	SV2AuthoritySecret string        // authority secret key (base58check or hex); empty: a random key (Pool.SV2AuthorityKey)
	SV2CertValidity    time.Duration // lifetime of each handshake's certificate; default 1h
	// SV2CertBackdate makes each certificate start this long before the
	// handshake: longer than SV2CertValidity, every certificate is already
	// expired (tests of the clients' refusal).
	SV2CertBackdate time.Duration
}

// sv2Authority parses SV2AuthoritySecret or draws a random key.
func (cfg *Config) sv2Authority() (*btcec.PrivateKey, error) {
	if cfg.SV2AuthoritySecret == "" {
		k, err := btcec.NewPrivateKey()
		if err != nil {
			return nil, fmt.Errorf("poolsim: sv2 authority key: %w", err)
		}
		return k, nil
	}
	k, err := noise.ParseSecretKey(cfg.SV2AuthoritySecret)
	if err != nil {
		return nil, fmt.Errorf("poolsim: sv2 authority secret: %w", err)
	}
	return k, nil
}

// withDefaults returns cfg with defaults filled in, or an error for values
// the pool cannot honour.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.NotifyInterval <= 0 {
		cfg.NotifyInterval = DefaultNotifyInterval
	}
	if cfg.BlockEvery <= 0 {
		cfg.BlockEvery = DefaultBlockEvery
	}
	switch {
	case cfg.Branches == 0:
		cfg.Branches = DefaultBranches
	case cfg.Branches < 0:
		cfg.Branches = 0
	}
	switch cfg.Validate {
	case "":
		cfg.Validate = ValidateFull
	case ValidateFull, ValidateStructural:
	default:
		return cfg, fmt.Errorf("poolsim: validate mode %q: want %q or %q", cfg.Validate, ValidateFull, ValidateStructural)
	}
	if cfg.VersionMask == 0 {
		cfg.VersionMask = DefaultVersionMask
	}
	if cfg.EN2Size == 0 {
		cfg.EN2Size = DefaultEN2Size
	}
	if cfg.EN2Size < 1 || cfg.EN2Size > 8 {
		return cfg, fmt.Errorf("poolsim: extranonce2 size %d: want 1..8", cfg.EN2Size)
	}
	if cfg.DefaultDiff == 0 {
		cfg.DefaultDiff = DefaultDiff
	}
	// SET_DIFF carries an exponent, so agent difficulties must be powers of two.
	if bits.OnesCount64(cfg.DefaultDiff) != 1 {
		return cfg, fmt.Errorf("poolsim: default difficulty %d is not a power of two", cfg.DefaultDiff)
	}
	if cfg.FixedDiff != 0 && bits.OnesCount64(cfg.FixedDiff) != 1 {
		return cfg, fmt.Errorf("poolsim: fixed difficulty %d is not a power of two", cfg.FixedDiff)
	}
	if cfg.JSONDiff < 0 {
		return cfg, fmt.Errorf("poolsim: JSON difficulty %g is negative", cfg.JSONDiff)
	}
	if cfg.ShareTarget <= 0 {
		cfg.ShareTarget = DefaultShareTarget
	}
	if cfg.StatsInterval <= 0 {
		cfg.StatsInterval = DefaultStatsInterval
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.Logger == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		cfg.Logger = l
	}
	return cfg, nil
}

// startDiff is the difficulty new workers get and the JSON set_difficulty
// value sent after authorize: JSONDiff wins, then FixedDiff, then DefaultDiff.
func (cfg *Config) startDiff() float64 {
	switch {
	case cfg.JSONDiff > 0:
		return cfg.JSONDiff
	case cfg.FixedDiff > 0:
		return float64(cfg.FixedDiff)
	}
	return float64(cfg.DefaultDiff)
}

// RegisterFlags binds every Config field that makes sense on a command line
// to fs, with cfg's current values as defaults. The Subres flag is inverted
// into NoSubres after parsing by the returned finish function.
func (cfg *Config) RegisterFlags(fs *flag.FlagSet) (finish func()) {
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "TCP address to accept miners and agents on")
	fs.DurationVar(&cfg.NotifyInterval, "notify-interval", orDur(cfg.NotifyInterval, DefaultNotifyInterval),
		"period between new jobs (capped at 60s so that miners always get fresh work)")
	fs.IntVar(&cfg.BlockEvery, "block-every", orInt(cfg.BlockEvery, DefaultBlockEvery),
		"every Nth job is a new block: new prevhash, clean_jobs true, older jobs stale (21)")
	fs.IntVar(&cfg.Branches, "branches", orInt(cfg.Branches, DefaultBranches),
		"merkle branches per job (12 gives a ~1.4 KB notify; -1 for none)")
	fs.StringVar(&cfg.Validate, "validate", orStr(cfg.Validate, ValidateFull),
		`share validation: "full" (real sha256d against the target) or "structural" (every check but the hash)`)
	mask := hexFlag{v: &cfg.VersionMask}
	if cfg.VersionMask == 0 {
		cfg.VersionMask = DefaultVersionMask
	}
	fs.Var(mask, "version-mask", "version-rolling mask granted to configure requests and checked on shares (hex)")
	fs.IntVar(&cfg.EN2Size, "en2-size", orInt(cfg.EN2Size, DefaultEN2Size),
		"extranonce2 size announced in the subscribe reply, 1..8 (btccom agents require 8)")
	fs.Uint64Var(&cfg.DefaultDiff, "default-diff", orU64(cfg.DefaultDiff, DefaultDiff),
		"start difficulty of agent workers and plain miners (power of two)")
	fs.Uint64Var(&cfg.FixedDiff, "fixed-diff", cfg.FixedDiff,
		"if non-zero: every worker and miner at this difficulty, no vardiff (power of two)")
	fs.Float64Var(&cfg.JSONDiff, "json-diff", cfg.JSONDiff,
		"if non-zero: the JSON set_difficulty value and start difficulty of every worker, fractions allowed (0.001 lets CPU miners find shares in seconds)")
	fs.BoolVar(&cfg.Vardiff, "vardiff", cfg.Vardiff,
		"per-worker vardiff in powers of two; agent workers get SET_DIFF frames before the next notify")
	fs.DurationVar(&cfg.ShareTarget, "share-target", orDur(cfg.ShareTarget, DefaultShareTarget),
		"vardiff target time between two shares of one worker")
	subres := !cfg.NoSubres
	fs.BoolVar(&subres, "subres", subres,
		`advertise the "subres" capability (per-share SUBMIT_RESPONSE verdicts to agents)`)
	fs.StringVar(&cfg.StatsFile, "stats-file", cfg.StatsFile,
		"write the stats JSON to this file every -stats-interval and on exit")
	fs.DurationVar(&cfg.StatsInterval, "stats-interval", orDur(cfg.StatsInterval, DefaultStatsInterval),
		"how often -stats-file is rewritten")
	fs.StringVar(&cfg.StatsAddr, "stats-addr", cfg.StatsAddr,
		"serve the stats JSON over HTTP at GET /stats on this address (e.g. 127.0.0.1:9334)")
	fs.DurationVar(&cfg.WriteTimeout, "write-timeout", orDur(cfg.WriteTimeout, DefaultWriteTimeout),
		"close a connection whose peer does not read for this long")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "random seed for job contents (0: random)")
	fs.StringVar(&cfg.SV2Listen, "sv2-listen", cfg.SV2Listen,
		"if set: also accept Stratum V2 (Noise) connections on this address, e.g. 127.0.0.1:34254")
	fs.StringVar(&cfg.SV2AuthoritySecret, "sv2-authority-secret", cfg.SV2AuthoritySecret,
		"SV2 authority secret key (base58check as in SRI configs, or hex); empty: a random key, whose public key is logged")
	fs.DurationVar(&cfg.SV2CertValidity, "sv2-cert-validity", orDur(cfg.SV2CertValidity, time.Hour),
		"lifetime of the certificate signed for each SV2 handshake")
	return func() {
		cfg.NoSubres = !subres
		cfg.Subres = subres
	}
}

// hexFlag parses a uint32 written in hex, with or without 0x.
type hexFlag struct{ v *uint32 }

func (h hexFlag) String() string {
	if h.v == nil {
		return ""
	}
	return fmt.Sprintf("%08x", *h.v)
}

func (h hexFlag) Set(s string) error {
	if len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X") {
		s = s[2:]
	}
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return errors.New("want up to 8 hex digits")
	}
	*h.v = uint32(v)
	return nil
}

func orDur(v, d time.Duration) time.Duration {
	if v == 0 {
		return d
	}
	return v
}

func orInt(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

func orU64(v, d uint64) uint64 {
	if v == 0 {
		return d
	}
	return v
}

func orStr(v, d string) string {
	if v == "" {
		return d
	}
	return v
}
