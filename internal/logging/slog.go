package logging

import (
	"context"
	"log/slog"
	"maps"

	"github.com/sirupsen/logrus"
)

// SlogHandler returns a slog.Handler that writes into l. protoactor-go logs
// through slog; routing it here keeps one format and one destination.
// Records below min are dropped (use slog.LevelWarn in production: the
// actor system logs every recovered panic and dead letter at Info), as are
// records l's own level would discard. Attributes become logrus fields;
// groups prefix their keys ("group.key").
func SlogHandler(l *logrus.Logger, min slog.Level) slog.Handler {
	return &slogHandler{l: l, min: min, fields: logrus.Fields{}}
}

type slogHandler struct {
	l      *logrus.Logger
	min    slog.Level
	fields logrus.Fields // from WithAttrs, keys already prefixed
	prefix string        // open groups, "a.b."
}

func toLogrus(l slog.Level) logrus.Level {
	switch {
	case l >= slog.LevelError:
		return logrus.ErrorLevel
	case l >= slog.LevelWarn:
		return logrus.WarnLevel
	case l >= slog.LevelInfo:
		return logrus.InfoLevel
	case l >= slog.LevelDebug:
		return logrus.DebugLevel
	}
	return logrus.TraceLevel
}

func (h *slogHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.min && h.l.IsLevelEnabled(toLogrus(l))
}

func (h *slogHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level < h.min {
		return nil
	}
	f := make(logrus.Fields, len(h.fields)+r.NumAttrs())
	maps.Copy(f, h.fields)
	r.Attrs(func(a slog.Attr) bool {
		addAttr(f, h.prefix, a)
		return true
	})
	e := h.l.WithFields(f)
	if !r.Time.IsZero() {
		e = e.WithTime(r.Time)
	}
	e.Log(toLogrus(r.Level), r.Message)
	return nil
}

// addAttr flattens a into f following slog's rules: empty attributes are
// dropped, groups prefix their members, a group without a key is inlined.
func addAttr(f logrus.Fields, prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, m := range a.Value.Group() {
			addAttr(f, p, m)
		}
		return
	}
	f[prefix+a.Key] = a.Value.Any()
}

func (h *slogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	n := h.clone()
	for _, a := range attrs {
		addAttr(n.fields, n.prefix, a)
	}
	return n
}

func (h *slogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	n := h.clone()
	n.prefix += name + "."
	return n
}

func (h *slogHandler) clone() *slogHandler {
	return &slogHandler{l: h.l, min: h.min, fields: maps.Clone(h.fields), prefix: h.prefix}
}
