package farmalert

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/btcagent/btcagent/internal/farmwatch"
	"github.com/sirupsen/logrus"
)

// sender owns one webhook: a bounded queue of events, and a goroutine that
// batches, rate-limits, posts and retries.
type sender struct {
	hook                         Webhook
	label                        string // the URL with its secret parts removed
	batch, minInterval           time.Duration
	retryMin, retryMax, timeout  time.Duration
	queueSize, retries, maxLines int
	client                       *http.Client
	log                          logrus.FieldLogger
	mu                           sync.Mutex
	pending                      []farmwatch.Event
	dropped                      int
	wake, quit, done             chan struct{}
	stopOnce                     sync.Once
	posted, failed, droppedTotal atomic.Int64
	lastStatus                   atomic.Int64 // last HTTP status (tests)
}

func newSender(f *FarmWatch, h Webhook, log logrus.FieldLogger) *sender {
	s := &sender{
		hook: h, label: Redact(h.URL), batch: f.BatchWindow, minInterval: f.MinInterval,
		retryMin: f.RetryMin, retryMax: f.RetryMax, timeout: f.Timeout,
		queueSize: f.QueueSize, retries: f.Retries, maxLines: f.MaxLines,
		// No redirects: a webhook that redirects is misconfigured, and
		// following it could carry the body somewhere unexpected.
		client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		wake:   make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
	}
	s.log = log.WithFields(logrus.Fields{"webhook": s.label, "format": h.Format})
	go s.run()
	return s
}

// enqueue adds events without ever blocking; past queue_size the oldest
// are dropped and the next message says how many.
func (s *sender) enqueue(evs []farmwatch.Event) {
	s.mu.Lock()
	s.pending = append(s.pending, evs...)
	if over := len(s.pending) - s.queueSize; over > 0 {
		s.pending = append(s.pending[:0], s.pending[over:]...)
		s.dropped += over
		s.droppedTotal.Add(int64(over))
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *sender) take() ([]farmwatch.Event, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	evs, dropped := s.pending, s.dropped
	s.pending, s.dropped = nil, 0
	return evs, dropped
}

func (s *sender) stop() {
	s.stopOnce.Do(func() { close(s.quit) })
	<-s.done
}

// sleep waits d, or returns false when the sender is stopped.
func (s *sender) sleep(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.quit:
		return false
	}
}

func (s *sender) run() {
	defer close(s.done)
	var last time.Time
	for {
		select {
		case <-s.quit:
			return
		case <-s.wake:
		}
		// Whatever else arrives within the window joins this message.
		if !s.sleep(s.batch) {
			return
		}
		if !last.IsZero() && !s.sleep(time.Until(last.Add(s.minInterval))) {
			return
		}
		evs, dropped := s.take()
		if len(evs) == 0 && dropped == 0 {
			continue
		}
		body, err := render(s.hook, evs, dropped, s.maxLines)
		if err != nil {
			s.log.WithError(err).Error("farm-watch: cannot build the webhook message")
			continue
		}
		s.deliver(body, len(evs))
		last = time.Now()
	}
}

// deliver posts one message, retrying transient failures with exponential
// backoff (or the server's Retry-After, within retry_max).
func (s *sender) deliver(body []byte, events int) {
	backoff := s.retryMin
	for attempt := 0; ; attempt++ {
		retryAfter, permanent, err := s.post(body)
		if err == nil {
			s.posted.Add(1)
			s.log.WithField("events", events).Debug("farm-watch: webhook sent")
			return
		}
		if permanent || attempt >= s.retries {
			s.failed.Add(1)
			s.log.WithError(err).WithFields(logrus.Fields{"events": events, "attempts": attempt + 1}).Warn("farm-watch: webhook failed; message dropped")
			return
		}
		wait := backoff
		if retryAfter > wait {
			wait = min(retryAfter, s.retryMax)
		}
		s.log.WithError(err).WithField("retry_in", wait.String()).Info("farm-watch: webhook failed; retrying")
		if !s.sleep(wait) {
			return
		}
		backoff = min(2*backoff, s.retryMax)
	}
}

// post makes one attempt. Errors never contain the URL: the HTTP client's
// errors are unwrapped from the *url.Error that would quote it.
func (s *sender) post(body []byte) (retryAfter time.Duration, permanent bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	// Stopping the sender (reload, shutdown) abandons a post in flight.
	go func() {
		select {
		case <-s.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.hook.URL, bytes.NewReader(body))
	if err != nil {
		return 0, true, errors.New("invalid webhook url")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "btcagent-farm-watch")
	res, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, false, fmt.Errorf("post: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	_ = res.Body.Close()
	s.lastStatus.Store(int64(res.StatusCode))
	if res.StatusCode >= 200 && res.StatusCode < 300 {
		return 0, false, nil
	}
	if secs, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil && secs > 0 {
		retryAfter = time.Duration(secs) * time.Second
	}
	// 4xx means the request itself is wrong (bad token, unknown chat):
	// repeating it cannot help, except for rate limits and timeouts.
	permanent = res.StatusCode >= 400 && res.StatusCode < 500 && res.StatusCode != http.StatusTooManyRequests && res.StatusCode != http.StatusRequestTimeout
	return retryAfter, permanent, fmt.Errorf("HTTP %d", res.StatusCode)
}

// Redact returns what may be logged of a webhook URL: scheme and host only.
// Telegram keeps its method name (the bot token before it is removed);
// Slack's and Mattermost's hook paths are the secret itself and go entirely,
// as do any user info and query string.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(invalid url)"
	}
	p := "/…"
	if strings.HasPrefix(u.Path, "/bot") {
		p = "/bot…/" + path.Base(u.Path)
	}
	return u.Scheme + "://" + u.Host + p
}
