// Package logging builds the agent's logrus logger from configuration: level,
// text or JSON format, and output to stderr or a size-rotated file. It also
// bridges protoactor-go's slog output into that logger, so one process writes
// one stream in one format, and offers a rate-limited warner, because a
// single misbehaving miner must not be able to flood the log.
package logging

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// Options select the logger's level, format and destination.
type Options struct {
	Level     string // debug|info|warn|error (also trace, warning); "" = info
	Format    string // text|json; "" = text
	Dir       string // "" or "stderr" = stderr; else a directory for <Name>.log
	MaxSizeMB int    // rotate the file at this size; <= 0 = 50
	MaxFiles  int    // rotated files kept (<Name>.log.1 ...); < 0 = 0
	Name      string // file base name; "" = "btcagent"
}

// New builds a logger. The Closer closes the log file (a no-op for stderr);
// call it last during shutdown.
func New(opts Options) (*logrus.Logger, io.Closer, error) {
	level := logrus.InfoLevel
	if opts.Level != "" {
		var err error
		if level, err = logrus.ParseLevel(opts.Level); err != nil {
			return nil, nil, fmt.Errorf("logging: level: %w", err)
		}
	}
	var formatter logrus.Formatter
	switch strings.ToLower(opts.Format) {
	case "", "text":
		formatter = &logrus.TextFormatter{FullTimestamp: true, TimestampFormat: "2006-01-02T15:04:05.000Z07:00"}
	case "json":
		formatter = &logrus.JSONFormatter{TimestampFormat: time.RFC3339Nano}
	default:
		return nil, nil, fmt.Errorf("logging: unknown format %q (want text or json)", opts.Format)
	}

	var out io.Writer = os.Stderr
	var closer io.Closer = nopCloser{}
	if opts.Dir != "" && opts.Dir != "stderr" {
		name := opts.Name
		if name == "" {
			name = "btcagent"
		}
		size := opts.MaxSizeMB
		if size <= 0 {
			size = 50
		}
		if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
			return nil, nil, fmt.Errorf("logging: %w", err)
		}
		rf, err := OpenRotating(filepath.Join(opts.Dir, name+".log"), int64(size)<<20, max(opts.MaxFiles, 0))
		if err != nil {
			return nil, nil, err
		}
		out, closer = rf, rf
	}

	l := logrus.New()
	l.SetLevel(level)
	l.SetFormatter(formatter)
	l.SetOutput(out)
	return l, closer, nil
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }
