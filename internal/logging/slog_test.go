package logging

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
)

func TestSlogHandlerLevelsAndFields(t *testing.T) {
	l, hook := test.NewNullLogger()
	l.SetLevel(logrus.DebugLevel)
	s := slog.New(SlogHandler(l, slog.LevelInfo)).With("lib", "protoactor")

	s.Debug("dropped below min")
	ts := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	r := slog.NewRecord(ts, slog.LevelWarn, "dead letter", 0)
	r.AddAttrs(slog.Int("count", 3), slog.Any("err", errors.New("boom")), slog.Duration("took", time.Second))
	if err := s.Handler().Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	s.Error("failed", "pid", "a/1")
	s.Info("started")

	entries := hook.AllEntries()
	if len(entries) != 3 {
		t.Fatalf("%d entries, want 3", len(entries))
	}
	e := entries[0]
	if e.Level != logrus.WarnLevel || e.Message != "dead letter" || !e.Time.Equal(ts) {
		t.Errorf("entry 0: %v %q %v", e.Level, e.Message, e.Time)
	}
	if e.Data["lib"] != "protoactor" || e.Data["count"] != int64(3) || e.Data["err"].(error).Error() != "boom" || e.Data["took"] != time.Second {
		t.Errorf("fields: %v", e.Data)
	}
	if entries[1].Level != logrus.ErrorLevel || entries[1].Data["pid"] != "a/1" {
		t.Errorf("entry 1: %v %v", entries[1].Level, entries[1].Data)
	}
	if entries[2].Level != logrus.InfoLevel || entries[2].Message != "started" {
		t.Errorf("entry 2: %v", entries[2])
	}
}

func TestSlogHandlerRespectsLogrusLevel(t *testing.T) {
	l, hook := test.NewNullLogger()
	l.SetLevel(logrus.ErrorLevel)
	h := SlogHandler(l, slog.LevelDebug)
	if h.Enabled(context.Background(), slog.LevelWarn) {
		t.Error("warn enabled though logrus is at error")
	}
	if !h.Enabled(context.Background(), slog.LevelError) {
		t.Error("error disabled")
	}
	slog.New(h).Warn("x")
	slog.New(h).Error("y")
	if len(hook.AllEntries()) != 1 || hook.LastEntry().Message != "y" {
		t.Errorf("entries: %v", hook.AllEntries())
	}
	if SlogHandler(l, slog.LevelError+4).Enabled(context.Background(), slog.LevelError) {
		t.Error("record below min enabled")
	}
}

func TestSlogHandlerGroups(t *testing.T) {
	l, hook := test.NewNullLogger()
	base := slog.New(SlogHandler(l, slog.LevelInfo))
	g := base.With("a", 1).WithGroup("actor").With("pid", "p1").WithGroup("")
	g.Info("m", "n", 2, slog.Group("msg", "type", "Ping"), slog.Group("", "inline", true), slog.Attr{})
	base.Info("plain") // the derived handlers must not have changed the base

	want := map[string]any{"a": int64(1), "actor.pid": "p1", "actor.n": int64(2), "actor.msg.type": "Ping", "actor.inline": true}
	got := hook.AllEntries()[0].Data
	if len(got) != len(want) {
		t.Errorf("fields %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if d := hook.LastEntry().Data; len(d) != 0 {
		t.Errorf("base handler gained fields: %v", d)
	}
}
