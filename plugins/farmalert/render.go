package farmalert

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/internal/farmwatch"
)

// maxText keeps a message under Telegram's 4096-character limit (Slack and
// Mattermost allow more; one size keeps them alike).
const maxText = 4000

var hostname = func() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "btcagent"
	}
	return h
}()

// JSONBody is the generic webhook's body: a summary line for humans and the
// events for programs.
type JSONBody struct {
	Source  string            `json:"source"` // always "btcagent"
	Host    string            `json:"host"`   // the agent's host name
	Text    string            `json:"text"`   // the same text a chat message gets
	Counts  map[string]int    `json:"counts"` // events by kind
	Dropped int               `json:"dropped"`
	Events  []farmwatch.Event `json:"events"`
}

func render(h Webhook, evs []farmwatch.Event, dropped, maxLines int) ([]byte, error) {
	text := Text(evs, dropped, maxLines)
	switch h.Format {
	case FormatTelegram:
		// Plain text (no parse_mode): worker names may hold * or _.
		return json.Marshal(map[string]any{"chat_id": h.ChatID, "text": text, "disable_web_page_preview": true})
	case FormatSlack:
		return json.Marshal(map[string]string{"text": text})
	default:
		counts := map[string]int{}
		for _, e := range evs {
			counts[string(e.Kind)]++
		}
		return json.Marshal(&JSONBody{Source: "btcagent", Host: hostname, Text: text, Counts: counts, Dropped: dropped, Events: evs})
	}
}

// Text is the message a person reads: one section per kind of event, miners
// by name with their last address, at most maxLines of them per section.
func Text(evs []farmwatch.Event, dropped, maxLines int) string {
	by := map[farmwatch.Kind][]farmwatch.Event{}
	for _, e := range evs {
		by[e.Kind] = append(by[e.Kind], e)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "btcagent farm watch on %s\n", hostname)
	for _, k := range farmwatch.Kinds {
		list := by[k]
		if len(list) == 0 {
			continue
		}
		b.WriteString("\n")
		switch k {
		case farmwatch.MinerOffline:
			fmt.Fprintf(&b, "%s offline:\n", plural(len(list), "miner"))
			lines(&b, list, maxLines, func(e farmwatch.Event) string {
				return fmt.Sprintf("- %s at %s (%s), last seen %s, gone %s", e.Worker, orDash(e.Address), e.Listener, clock(e.Since), dur(e.Seconds))
			})
		case farmwatch.MinerOnline:
			fmt.Fprintf(&b, "%s back online:\n", plural(len(list), "miner"))
			lines(&b, list, maxLines, func(e farmwatch.Event) string {
				return fmt.Sprintf("- %s at %s (%s), was offline %s", e.Worker, orDash(e.Address), e.Listener, dur(e.Seconds))
			})
		case farmwatch.HashrateDrop:
			for _, e := range list {
				fmt.Fprintf(&b, "Farm hashrate dropped %.0f%% within %s: %s -> %s\n", e.Percent, dur(e.Seconds), codec.FormatHashrate(e.From), codec.FormatHashrate(e.To))
			}
		case farmwatch.LinkDown:
			for _, e := range list {
				fmt.Fprintf(&b, "Pool link down: %s slot %d (%s) for %s\n", e.Listener, e.Slot, orDash(e.Pool), dur(e.Seconds))
			}
		case farmwatch.LinkUp:
			for _, e := range list {
				fmt.Fprintf(&b, "Pool link back: %s slot %d (%s) after %s\n", e.Listener, e.Slot, orDash(e.Pool), dur(e.Seconds))
			}
		case farmwatch.Failover:
			for _, e := range list {
				fmt.Fprintf(&b, "Failover on %s: %d\n", e.Listener, e.Count)
			}
		}
	}
	if dropped > 0 {
		fmt.Fprintf(&b, "\n(%d older events were dropped: the queue was full)\n", dropped)
	}
	s := strings.TrimRight(b.String(), "\n")
	if r := []rune(s); len(r) > maxText {
		s = string(r[:maxText-1]) + "…"
	}
	return s
}

func lines(b *strings.Builder, list []farmwatch.Event, maxLines int, line func(farmwatch.Event) string) {
	for i, e := range list {
		if i == maxLines {
			fmt.Fprintf(b, "... and %d more\n", len(list)-maxLines)
			return
		}
		b.WriteString(line(e))
		b.WriteString("\n")
	}
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func clock(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func dur(secs float64) string {
	return time.Duration(secs * float64(time.Second)).Round(time.Second).String()
}
