package farmalert

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/farmwatch"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/plugins"
	"github.com/sirupsen/logrus"
)

// bus is a stand-in for the registry: tests publish events by hand.
type bus struct {
	mu   sync.Mutex
	subs map[int]func([]farmwatch.Event)
	n    int
	done chan struct{}
}

func (b *bus) Done() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done == nil {
		b.done = make(chan struct{})
	}
	return b.done
}

func (b *bus) Subscribe(fn func([]farmwatch.Event)) func() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.subs == nil {
		b.subs = map[int]func([]farmwatch.Event){}
	}
	id := b.n
	b.n++
	b.subs[id] = fn
	return func() { b.mu.Lock(); delete(b.subs, id); b.mu.Unlock() }
}

func (b *bus) publish(evs ...farmwatch.Event) {
	b.mu.Lock()
	var fns []func([]farmwatch.Event)
	for _, fn := range b.subs {
		fns = append(fns, fn)
	}
	b.mu.Unlock()
	for _, fn := range fns {
		fn(evs)
	}
}

func (b *bus) subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// receiver is a local webhook endpoint that records each request and
// answers with the next scripted status (200 once the script is used up).
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	script []int
	got    []request
	arrive chan request
}

type request struct {
	at   time.Time
	path string
	body []byte
}

func newReceiver(t *testing.T, script ...int) *receiver {
	r := &receiver{script: script, arrive: make(chan request, 100)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		rq := request{at: time.Now(), path: req.URL.Path, body: body}
		r.mu.Lock()
		r.got = append(r.got, rq)
		code := http.StatusOK
		if len(r.script) > 0 {
			code, r.script = r.script[0], r.script[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(code)
		r.arrive <- rq
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// next waits for the next request.
func (r *receiver) next(t *testing.T) request {
	t.Helper()
	select {
	case rq := <-r.arrive:
		return rq
	case <-time.After(testenv.Timeout):
		t.Fatal("no webhook request arrived")
		return request{}
	}
}

// none checks that no request arrives within d (after the ones awaited).
func (r *receiver) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case rq := <-r.arrive:
		t.Fatalf("unexpected request %s", rq.body)
	case <-time.After(d):
	}
}

func quick(urls ...Webhook) *FarmWatch {
	return &FarmWatch{BatchWindow: 100 * time.Millisecond, MinInterval: 10 * time.Millisecond, RetryMin: 10 * time.Millisecond,
		RetryMax: 50 * time.Millisecond, Retries: 3, Webhooks: urls}
}

func provision(t *testing.T, f *FarmWatch, b *bus, listener string, log logrus.FieldLogger) *FarmWatch {
	t.Helper()
	if log == nil {
		log = logrus.New()
	}
	if err := f.Provision(plugins.Env{Listener: listener, Farm: b, Log: log}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func offline(listener string, i int) farmwatch.Event {
	return farmwatch.Event{Kind: farmwatch.MinerOffline, Time: time.Now(), Listener: listener, Worker: fmt.Sprintf("farm.w%03d", i),
		Address: fmt.Sprintf("10.0.%d.%d:4028", i/250, i%250+1), Since: time.Now().Add(-time.Minute), Seconds: 60}
}

// 200 miners gone at once (in three sweeps within the batch window) are one
// post, listing the first max_lines miners with their addresses.
func TestBatchedIntoOneMessage(t *testing.T) {
	r := newReceiver(t)
	b := &bus{}
	f := quick(Webhook{URL: r.srv.URL + "/hook"})
	f.MaxLines = 30
	provision(t, f, b, "main", nil)
	var evs []farmwatch.Event
	for i := range 200 {
		evs = append(evs, offline("main", i))
	}
	b.publish(evs[:50]...)
	b.publish(evs[50:120]...)
	b.publish(evs[120:]...)
	rq := r.next(t)
	r.none(t, 300*time.Millisecond)
	var body JSONBody
	if err := json.Unmarshal(rq.body, &body); err != nil {
		t.Fatal(err)
	}
	if body.Source != "btcagent" || len(body.Events) != 200 || body.Counts["miner_offline"] != 200 {
		t.Fatalf("body: source %q, %d events, counts %v", body.Source, len(body.Events), body.Counts)
	}
	for _, want := range []string{"200 miners offline:", "farm.w000 at 10.0.0.1:4028 (main)", "... and 170 more"} {
		if !strings.Contains(body.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, body.Text)
		}
	}
	if strings.Contains(body.Text, "farm.w030 ") {
		t.Errorf("text lists more than max_lines miners")
	}
}

// Posts to one webhook are at least min_interval apart; what arrives in
// between waits and goes in the next message.
func TestRateLimited(t *testing.T) {
	r := newReceiver(t)
	b := &bus{}
	f := quick(Webhook{URL: r.srv.URL})
	f.MinInterval = 600 * time.Millisecond
	provision(t, f, b, "main", nil)
	b.publish(offline("main", 1))
	first := r.next(t)
	for i := 2; i < 6; i++ {
		b.publish(offline("main", i))
		time.Sleep(20 * time.Millisecond) // spread the events; not a synchronisation
	}
	second := r.next(t)
	if gap := second.at.Sub(first.at); gap < f.MinInterval {
		t.Fatalf("second post %v after the first, min_interval %v", gap, f.MinInterval)
	}
	var body JSONBody
	_ = json.Unmarshal(second.body, &body)
	if len(body.Events) != 4 {
		t.Fatalf("second message has %d events, want the 4 that waited", len(body.Events))
	}
}

// A 5xx is retried with backoff until it succeeds; a 4xx (bad token, unknown
// chat) is not repeated.
func TestRetries(t *testing.T) {
	r := newReceiver(t, 500, 503)
	b := &bus{}
	f := provision(t, quick(Webhook{URL: r.srv.URL}), b, "main", nil)
	b.publish(offline("main", 1))
	for range 3 {
		r.next(t)
	}
	s := f.grp.senders[0]
	deadline := time.Now().Add(testenv.Timeout)
	for s.posted.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if s.posted.Load() != 1 || s.failed.Load() != 0 {
		t.Fatalf("posted %d failed %d", s.posted.Load(), s.failed.Load())
	}

	r2 := newReceiver(t, 404)
	b2 := &bus{}
	f2 := provision(t, quick(Webhook{URL: r2.srv.URL}), b2, "main", nil)
	b2.publish(offline("main", 1))
	r2.next(t)
	r2.none(t, 200*time.Millisecond)
	s2 := f2.grp.senders[0]
	for s2.failed.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if s2.failed.Load() != 1 {
		t.Fatalf("404 not counted as failed")
	}
}

// Telegram and Slack/Mattermost get their own bodies, at their own paths.
func TestTemplates(t *testing.T) {
	r := newReceiver(t)
	b := &bus{}
	provision(t, quick(
		Webhook{URL: r.srv.URL + "/bot123456:ABC-secret/sendMessage", Format: FormatTelegram, ChatID: "-100200"},
		Webhook{URL: r.srv.URL + "/hooks/slacksecret", Format: FormatSlack},
	), b, "main", nil)
	b.publish(offline("main", 7), farmwatch.Event{Kind: farmwatch.HashrateDrop, From: 2e12, To: 1e12, Percent: 50, Seconds: 600})
	got := map[string]map[string]any{}
	for range 2 {
		rq := r.next(t)
		var m map[string]any
		if err := json.Unmarshal(rq.body, &m); err != nil {
			t.Fatal(err)
		}
		got[rq.path] = m
	}
	tg := got["/bot123456:ABC-secret/sendMessage"]
	if tg["chat_id"] != "-100200" || !strings.Contains(fmt.Sprint(tg["text"]), "farm.w007 at 10.0.0.8:4028") || tg["parse_mode"] != nil {
		t.Errorf("telegram body %v", tg)
	}
	sl := got["/hooks/slacksecret"]
	if len(sl) != 1 || !strings.Contains(fmt.Sprint(sl["text"]), "Farm hashrate dropped 50% within 10m0s: 2.00 TH/s -> 1.00 TH/s") {
		t.Errorf("slack body %v", sl)
	}
}

// The secret parts of webhook URLs never reach the log: not in the failure
// lines, not inside the HTTP client's errors, not at debug level.
func TestSecretsNotLogged(t *testing.T) {
	buf := &testenv.SyncBuffer{}
	log := logrus.New()
	log.SetLevel(logrus.DebugLevel)
	log.SetOutput(buf)
	r := newReceiver(t, 500, 500, 500, 500, 500, 500, 500, 500)
	// A closed port: the client's error would quote the URL.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	b := &bus{}
	f := provision(t, quick(
		Webhook{URL: r.srv.URL + "/bot999:TOKENSECRET/sendMessage", Format: FormatTelegram, ChatID: "1"},
		Webhook{URL: "http://user:PASSSECRET@" + dead + "/services/T0/B0/HOOKSECRET?k=QUERYSECRET", Format: FormatSlack},
	), b, "main", log)
	b.publish(offline("main", 1))
	deadline := time.Now().Add(testenv.Timeout)
	for (f.grp.senders[0].failed.Load() != 1 || f.grp.senders[1].failed.Load() != 1) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	out := buf.String()
	if !strings.Contains(out, "webhook failed; message dropped") || !strings.Contains(out, "/bot…/sendMessage") {
		t.Fatalf("failures not logged as expected:\n%s", out)
	}
	for _, secret := range []string{"TOKENSECRET", "PASSSECRET", "HOOKSECRET", "QUERYSECRET", "999"} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}
	for in, want := range map[string]string{
		"https://api.telegram.org/bot123:abc/sendMessage": "https://api.telegram.org/bot…/sendMessage",
		"https://hooks.slack.com/services/T000/B000/XXXX": "https://hooks.slack.com/…",
		"https://chat.example.com/hooks/xyz?x=1":          "https://chat.example.com/…",
		"http://u:p@example.com:8080/a":                   "http://example.com:8080/…",
		"not a url":                                       "(invalid url)",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// Instances of one table on several listeners share one sender: events of
// both listeners arrive in one message, events of a listener the table does
// not apply to are left out, and the subscription ends with the last Close.
func TestInstancesShareSenders(t *testing.T) {
	r := newReceiver(t)
	b := &bus{}
	a := provision(t, quick(Webhook{URL: r.srv.URL}), b, "a", nil)
	c := provision(t, quick(Webhook{URL: r.srv.URL}), b, "b", nil)
	if a.grp != c.grp || b.subscribers() != 1 {
		t.Fatalf("instances did not share: %d subscriptions", b.subscribers())
	}
	b.publish(offline("a", 1), offline("b", 2), offline("other", 3), farmwatch.Event{Kind: farmwatch.HashrateDrop, From: 2, To: 1, Percent: 50})
	var body JSONBody
	_ = json.Unmarshal(r.next(t).body, &body)
	if len(body.Events) != 3 || body.Counts["miner_offline"] != 2 || body.Counts["hashrate_drop"] != 1 {
		t.Fatalf("shared message: %v", body.Counts)
	}
	_ = a.Close()
	if b.subscribers() != 1 {
		t.Fatal("closing one instance ended the subscription")
	}
	_ = c.Close()
	if b.subscribers() != 0 {
		t.Fatal("subscription outlived the last instance")
	}
}

// Publishing never waits for the network, and the queue is bounded.
func TestNeverBlocksAndQueueBounded(t *testing.T) {
	hang := make(chan struct{})
	inFlight := make(chan struct{}, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { inFlight <- struct{}{}; <-hang }))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(hang) })
	b := &bus{}
	f := quick(Webhook{URL: srv.URL})
	f.QueueSize = 10
	f.Timeout = 5 * time.Second
	provision(t, f, b, "main", nil)
	start := time.Now()
	for i := range 1000 {
		b.publish(offline("main", i))
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("publishing 1000 events took %v", d)
	}
	s := f.grp.senders[0]
	s.mu.Lock()
	n := len(s.pending)
	s.mu.Unlock()
	if n > 10 || s.droppedTotal.Load() < 990-10 {
		t.Fatalf("queue holds %d, dropped %d", n, s.droppedTotal.Load())
	}
	// Stopping abandons the hanging post at once instead of waiting for
	// the request timeout.
	select {
	case <-inFlight:
	case <-time.After(testenv.Timeout):
		t.Fatal("the post never reached the receiver")
	}
	start = time.Now()
	_ = f.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close waited %v for a hanging webhook", d)
	}
}

// Options are checked, and errors never quote the URL.
func TestProvisionErrors(t *testing.T) {
	for _, c := range []struct {
		opts map[string]any
		want string
	}{
		{map[string]any{}, "at least one [[plugins.webhook]]"},
		{map[string]any{"webhook": []map[string]any{{"url": "ftp://x/SECRET"}}}, "must be an http:// or https:// address"},
		{map[string]any{"webhook": []map[string]any{{"url": "https://x/SECRET", "format": "teams"}}}, `format "teams"`},
		{map[string]any{"webhook": []map[string]any{{"url": "https://x/botSECRET/sendMessage", "format": "telegram"}}}, "needs chat_id"},
		{map[string]any{"events": []string{"miner_gone"}, "webhook": []map[string]any{{"url": "https://x/SECRET"}}}, `unknown event "miner_gone"`},
		{map[string]any{"retry_min": "1m", "retry_max": "1s", "webhook": []map[string]any{{"url": "https://x/SECRET"}}}, "retry_max"},
	} {
		spec := config.NewPluginSpec(Name, c.opts)
		_, err := plugins.Build([]config.PluginSpec{spec}, plugins.Env{Listener: "main", Port: 3333})
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%v: error %v, want %q without the URL", c.opts, err, c.want)
		}
	}
}

// When the registry stops (agent shutdown, which does not close chains)
// the senders and the subscription go with it.
func TestRegistryStopReleasesSenders(t *testing.T) {
	r := newReceiver(t)
	b := &bus{}
	f := provision(t, quick(Webhook{URL: r.srv.URL}), b, "main", nil)
	b.Done()
	b.mu.Lock()
	close(b.done)
	b.mu.Unlock()
	select {
	case <-f.grp.senders[0].done:
	case <-time.After(testenv.Timeout):
		t.Fatal("sender still running after the registry stopped")
	}
	deadline := time.Now().Add(testenv.Timeout)
	for b.subscribers() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if b.subscribers() != 0 {
		t.Fatal("subscription outlived the registry")
	}
	_ = f.Close() // and a later Close is harmless
}
