package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/api"
	"github.com/btcagent/btcagent/plugins"
	"github.com/sirupsen/logrus"
)

// daemonOptions come from the command line, not the config file.
type daemonOptions struct {
	PIDFile  string      // written at start, removed at exit; `btcagent reload` reads it
	LogDir   string      // -l: overrides log_dir, also after a reload
	OnReload func(error) // called after every reload attempt (tests)
}

// daemon is what runs around the agent: the HTTP server, the pid file and
// configuration reload on SIGHUP.
type daemon struct {
	opts  daemonOptions
	log   *logrus.Logger
	agent *agent.Agent

	mu  sync.Mutex // one reload at a time; guards cfg and api
	cfg *config.Config
	api *api.Server // nil while http_listen is ""

	hup       chan os.Signal
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// startDaemon starts the HTTP server (if configured), writes the pid file
// and begins handling SIGHUP. An HTTP server that cannot bind is logged, not
// fatal: miners must keep mining even if the dashboard port is taken.
func startDaemon(cfg *config.Config, log *logrus.Logger, a *agent.Agent, opts daemonOptions) (*daemon, error) {
	d := &daemon{opts: opts, log: log, agent: a, cfg: cfg, hup: make(chan os.Signal, 1), done: make(chan struct{})}
	if opts.PIDFile != "" {
		if err := os.WriteFile(opts.PIDFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			return nil, fmt.Errorf("pid file: %w", err)
		}
	}
	d.applyHTTP(cfg, nil)
	signal.Notify(d.hup, syscall.SIGHUP)
	d.wg.Add(1)
	go d.loop()
	return d, nil
}

func (d *daemon) loop() {
	defer d.wg.Done()
	for {
		select {
		case <-d.hup:
			d.log.Info("SIGHUP: reloading the configuration")
			_ = d.reload()
		case <-d.done:
			return
		}
	}
}

// close stops signal handling and the HTTP server and removes the pid file
// (only if it is still ours: a second instance may have replaced it).
func (d *daemon) close() {
	d.closeOnce.Do(func() {
		signal.Stop(d.hup)
		close(d.done)
		d.wg.Wait()
		d.mu.Lock()
		if d.api != nil {
			d.api.Close()
		}
		d.mu.Unlock()
		if d.opts.PIDFile != "" {
			if b, err := os.ReadFile(d.opts.PIDFile); err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(os.Getpid()) {
				_ = os.Remove(d.opts.PIDFile)
			}
		}
	})
}

// reload re-reads the config file the agent was started with and applies
// what can change at run time. A config that does not load, validate or
// provision is refused with the error logged, and the running one stays.
func (d *daemon) reload() (err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	at := time.Now()
	defer func() {
		if d.api != nil {
			d.api.RecordReload(at, err)
		}
		if err != nil {
			d.log.WithError(err).Error("config reload refused; the running configuration stays in effect")
		}
		if d.opts.OnReload != nil {
			d.opts.OnReload(err)
		}
	}()
	old := d.cfg
	if old.Path == "" {
		return errors.New("the configuration was not loaded from a file")
	}
	cfg, warnings, err := loadConfig(old.Path)
	if err != nil {
		return err
	}
	if d.opts.LogDir != "" {
		cfg.LogDir = d.opts.LogDir
	}
	if err := plugins.Validate(cfg.Plugins, ports(cfg)); err != nil {
		return err
	}
	level, err := logrus.ParseLevel(cfg.LogLevel)
	if err != nil {
		return fmt.Errorf("log_level: %w", err)
	}
	res, err := d.agent.Reload(cfg)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		d.log.Warn("config: " + w)
	}
	d.log.SetLevel(level)
	d.applyHTTP(cfg, old)
	d.cfg = cfg

	ignored := res.Ignored
	if cfg.LogFormat != old.LogFormat {
		ignored = append(ignored, "log_format")
	}
	if cfg.LogDir != old.LogDir || cfg.LogMaxSizeMB != old.LogMaxSizeMB || cfg.LogMaxFiles != old.LogMaxFiles {
		ignored = append(ignored, "log_dir/log_max_size_mb/log_max_files")
	}
	if len(ignored) > 0 {
		d.log.WithField("settings", strings.Join(ignored, ", ")).Warn("config reload: these settings changed but take effect only after a restart")
	}
	d.log.WithFields(logrus.Fields{
		"started": strings.Join(res.Started, ","), "stopped": strings.Join(res.Stopped, ","),
		"restarted": strings.Join(res.Restarted, ","), "unchanged": strings.Join(res.Unchanged, ","),
		"log_level": cfg.LogLevel,
	}).Info("config reloaded")
	return nil
}

// applyHTTP starts, moves, re-keys or stops the HTTP server to match cfg
// (old is nil at start). The server object and its hashrate history survive
// an address change.
func (d *daemon) applyHTTP(cfg, old *config.Config) {
	if cfg.HTTPListen == "" {
		if d.api != nil {
			d.api.Close()
			d.api = nil
			d.log.Info("http: server stopped (http_listen is empty)")
		}
		return
	}
	if d.api == nil {
		d.api = api.New(api.Options{
			Source: d.agent, Version: version, Token: cfg.HTTPToken, Log: d.log,
			AllowedHosts: cfg.HTTPAllowedHosts, MaxConns: cfg.HTTPMaxConns,
		})
	} else if old != nil {
		if cfg.HTTPToken != old.HTTPToken {
			d.api.SetToken(cfg.HTTPToken)
		}
		if !slices.Equal(cfg.HTTPAllowedHosts, old.HTTPAllowedHosts) {
			d.api.SetAllowedHosts(cfg.HTTPAllowedHosts)
		}
		if cfg.HTTPMaxConns != old.HTTPMaxConns {
			d.api.SetMaxConns(cfg.HTTPMaxConns)
		}
	}
	if old != nil && old.HTTPListen == cfg.HTTPListen && d.api.Addr() != nil {
		return
	}
	if err := d.api.Start(cfg.HTTPListen); err != nil {
		d.log.WithError(err).Error("http: cannot serve metrics and dashboard; the agent runs without them")
		return
	}
	d.log.WithFields(logrus.Fields{"addr": d.api.Addr().String(), "token": cfg.HTTPToken != ""}).Info("http: metrics at /metrics, API at /api/v1/, dashboard at /")
}

// httpAddr is where the HTTP server listens, or "" if it does not.
func (d *daemon) httpAddr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.api == nil || d.api.Addr() == nil {
		return ""
	}
	return d.api.Addr().String()
}
