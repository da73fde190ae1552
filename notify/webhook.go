package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// The results of a delivery, for caddy_gatekeeper_notifications_total.
const (
	ResultSent    = "sent"    // the receiver answered 2xx
	ResultRetried = "retried" // one attempt failed and another will follow
	ResultDropped = "dropped" // given up: full queue, refused, out of attempts, or closing
)

// Options tune a Webhook; the zero value of each field is its default.
type Options struct {
	// QueueSize is how many events may wait for delivery (256); beyond it
	// an event is dropped rather than hold up its caller.
	QueueSize int
	// Attempts is how many times an event is tried in all (6).
	Attempts int
	// FirstBackoff is the wait after the first failure (1s); it doubles with
	// each failure up to MaxBackoff (1 min), each wait jittered.
	FirstBackoff time.Duration
	MaxBackoff   time.Duration
	// Timeout bounds one attempt, answer included (10s).
	Timeout time.Duration
	// Client sends the requests. The default follows no redirects (a
	// redirect is refused: configure the URL it points to) and has its
	// idle connections closed by Close.
	Client *http.Client
	// Count is called once per result of an event (and once per retry).
	Count func(event, result string)
	// Logger receives drops (warnings) and retries (debug).
	Logger *zap.Logger
	// Now and After are the clock: Now dates events and reads an
	// HTTP-date Retry-After, After waits between attempts. Tests pass
	// their own.
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time
}

// The defaults of Options.
const (
	DefaultQueueSize    = 256
	DefaultAttempts     = 6
	DefaultFirstBackoff = time.Second
	DefaultMaxBackoff   = time.Minute
	DefaultTimeout      = 10 * time.Second
)

// withDefaults fills the zero fields of o, or names the first field that
// cannot be used.
func (o Options) withDefaults() (Options, error) {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"queue size", int64(o.QueueSize)}, {"attempts", int64(o.Attempts)}, {"first backoff", int64(o.FirstBackoff)},
		{"max backoff", int64(o.MaxBackoff)}, {"timeout", int64(o.Timeout)},
	} {
		if f.v < 0 {
			return o, fmt.Errorf("notify: the %s is negative", f.name)
		}
	}
	o.QueueSize = orDefault(o.QueueSize, DefaultQueueSize)
	o.Attempts = orDefault(o.Attempts, DefaultAttempts)
	o.FirstBackoff = orDefault(o.FirstBackoff, DefaultFirstBackoff)
	o.MaxBackoff = orDefault(o.MaxBackoff, DefaultMaxBackoff)
	o.Timeout = orDefault(o.Timeout, DefaultTimeout)
	if o.FirstBackoff > o.MaxBackoff {
		return o, fmt.Errorf("notify: the first backoff (%s) is longer than the max backoff (%s)", o.FirstBackoff, o.MaxBackoff)
	}
	if o.Count == nil {
		o.Count = func(string, string) {}
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.After == nil {
		o.After = time.After
	}
	return o, nil
}

// orDefault is v, or def when v is zero.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Webhook posts events to one URL, in order, from one goroutine of its own:
// Notify only queues.
type Webhook struct {
	url       string
	host      string // for logs: a webhook's path is often its secret
	opts      Options
	ownClient bool // Close closes the idle connections of the client New made

	queue chan Event

	mu     sync.RWMutex // Notify reads closed, Close writes it
	closed bool

	life    context.Context // cancelled when Close's context ends
	cancel  context.CancelFunc
	closing chan struct{} // closed by Close: deliver what is queued, then stop
	once    sync.Once
	done    chan struct{} // closed when the goroutine has stopped
}

// New checks rawURL (http or https, with a host) and starts the goroutine
// that delivers to it; Close stops it.
func New(rawURL string, opts Options) (*Webhook, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which holds the webhook's secret
		}
		return nil, fmt.Errorf("notify webhook: not a URL: %v", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("notify webhook: the scheme is %q; http or https is needed", u.Scheme)
	case u.Host == "" || u.Hostname() == "":
		return nil, errors.New("notify webhook: the URL has no host")
	case u.Fragment != "":
		return nil, errors.New("notify webhook: the URL has a fragment (#…), which is never sent")
	}
	opts, err = opts.withDefaults()
	if err != nil {
		return nil, err
	}
	own := opts.Client == nil
	if own {
		opts.Client = &http.Client{
			Transport:     http.DefaultTransport.(*http.Transport).Clone(),
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	w := &Webhook{
		url: u.String(), host: u.Host, opts: opts, ownClient: own,
		queue:   make(chan Event, opts.QueueSize),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	w.life, w.cancel = context.WithCancel(context.Background())
	go w.run()
	return w, nil
}

// Notify queues ev for delivery and returns at once. When the queue is full,
// or the webhook closed, ev is dropped (counted and logged): a slow
// receiver never slows Gatekeeper. A nil Webhook (none configured) does
// nothing.
func (w *Webhook) Notify(ev Event) {
	if w == nil {
		return
	}
	if ev.At.IsZero() {
		ev.At = w.opts.Now()
	}
	ev = snapshot(ev)
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		w.drop(ev, "the webhook is closed")
		return
	}
	select {
	case w.queue <- ev:
	default:
		w.drop(ev, "the queue is full ("+strconv.Itoa(cap(w.queue))+" events)")
	}
}

// Close stops taking events and delivers those queued, retries included,
// until ctx ends; then it drops what is left. It returns when the
// goroutine has stopped: with nil when all were tried, ctx's error if not.
// Closing a nil Webhook does nothing.
func (w *Webhook) Close(ctx context.Context) error {
	if w == nil {
		return nil
	}
	w.once.Do(func() {
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		close(w.closing)
	})
	var err error
	select {
	case <-w.done:
	case <-ctx.Done():
		err = fmt.Errorf("notify webhook: closing: %w", ctx.Err())
		w.cancel()
		<-w.done
	}
	w.cancel()
	if w.ownClient {
		w.opts.Client.CloseIdleConnections()
	}
	return err
}

// run delivers events in order until Close, then what is queued.
func (w *Webhook) run() {
	defer close(w.done)
	for {
		select {
		case ev := <-w.queue:
			w.deliver(ev)
		case <-w.closing:
			for {
				select {
				case ev := <-w.queue:
					if w.life.Err() != nil {
						w.drop(ev, "closed before it could be sent")
						continue
					}
					w.deliver(ev)
				default:
					return
				}
			}
		}
	}
}

// deliver tries ev until it is sent, refused, out of attempts, or Close
// gives up on it.
func (w *Webhook) deliver(ev Event) {
	body, err := Body(ev)
	if err != nil {
		w.drop(ev, "cannot encode: "+err.Error())
		return
	}
	for attempt := 1; ; attempt++ {
		res := w.post(body)
		switch {
		case res.sent:
			w.opts.Count(ev.Kind, ResultSent)
			return
		case w.life.Err() != nil:
			w.drop(ev, "closed before it could be sent (last: "+res.why+")")
			return
		case !res.retry:
			w.drop(ev, res.why)
			return
		case attempt >= w.opts.Attempts:
			w.drop(ev, "no answer after "+strconv.Itoa(attempt)+" attempts (last: "+res.why+")")
			return
		}
		wait := w.backoff(attempt)
		if res.retryAfter >= 0 {
			wait = min(res.retryAfter, w.opts.MaxBackoff)
		}
		w.opts.Count(ev.Kind, ResultRetried)
		w.opts.Logger.Debug("notification not delivered; retrying",
			zap.String("event", ev.Kind), zap.String("approval", approvalID(ev)), zap.String("host", w.host),
			zap.Int("attempt", attempt), zap.Duration("wait", wait), zap.String("reason", res.why))
		select {
		case <-w.opts.After(wait):
		case <-w.life.Done():
			w.drop(ev, "closed before it could be sent (last: "+res.why+")")
			return
		}
	}
}

// backoff is the wait after the attempt-th failure: FirstBackoff doubled
// for each earlier failure, at most MaxBackoff, then jittered down by up
// to half so that many instances do not retry together.
func (w *Webhook) backoff(attempt int) time.Duration {
	d := w.opts.FirstBackoff
	for i := 1; i < attempt && d < w.opts.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, w.opts.MaxBackoff)
	return d - rand.N(d/2+1)
}

// result is what one attempt came to.
type result struct {
	sent       bool
	retry      bool
	retryAfter time.Duration // the answer's Retry-After; -1 without one
	why        string
}

// post makes one attempt to deliver body.
func (w *Webhook) post(body []byte) result {
	ctx, cancel := context.WithTimeout(w.life, w.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return result{why: plainErr(err), retryAfter: -1}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	resp, err := w.opts.Client.Do(req)
	if err != nil {
		return result{retry: true, retryAfter: -1, why: plainErr(err)}
	}
	defer resp.Body.Close()
	// Read a little of the answer for the log, and the rest (up to a bound)
	// so that the connection can serve the next event.
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	code := resp.StatusCode
	why := resp.Status
	if s := strings.Join(strings.Fields(string(head)), " "); s != "" {
		why += ": " + s
	}
	switch {
	case code >= 200 && code < 300:
		return result{sent: true}
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		return result{retry: true, retryAfter: retryAfter(resp.Header.Get("Retry-After"), w.opts.Now()), why: why}
	case code >= 300 && code < 400:
		return result{retryAfter: -1, why: why + " (redirected to " + resp.Header.Get("Location") + "; configure that URL)"}
	default:
		return result{retryAfter: -1, why: why}
	}
}

// UserAgent names Gatekeeper to the receiver.
const UserAgent = "Gatekeeper-Notify/1 (+https://github.com/customernode/gatekeeper)"

// retryAfter reads a Retry-After header: seconds or an HTTP date; -1 when
// absent or unreadable.
func retryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return -1
	}
	if s, err := strconv.ParseInt(h, 10, 64); err == nil {
		if s < 0 {
			return -1
		}
		return time.Duration(min(s, int64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(t.Sub(now), 0)
	}
	return -1
}

// plainErr is err without the URL an *url.Error quotes: a webhook's URL
// is its secret and must not reach the logs.
func plainErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}

// drop gives up on ev: counted and logged.
func (w *Webhook) drop(ev Event, why string) {
	w.opts.Count(ev.Kind, ResultDropped)
	w.opts.Logger.Warn("notification dropped",
		zap.String("event", ev.Kind), zap.String("approval", approvalID(ev)), zap.String("host", w.host),
		zap.String("reason", why))
}

func approvalID(ev Event) string {
	if ev.Approval == nil {
		return ""
	}
	return ev.Approval.ID
}
