package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of an Endpoint's zero fields.
const (
	DefaultTimeout     = 5 * time.Second
	DefaultMaxAttempts = 5
	DefaultBackoff     = time.Second
	DefaultMaxBackoff  = time.Minute
	DefaultQueueSize   = 1024
	// maxBatch bounds the events of one delivery.
	maxBatch = 64
)

// Endpoint is one webhook receiver and what it receives.
type Endpoint struct {
	// Name names the endpoint in logs and metrics.
	Name string
	// URL receives each envelope by POST.
	URL string
	// Secret is the HMAC-SHA256 key of SignatureHeader.
	Secret []byte
	// Header is added to every request.
	Header http.Header
	// Repositories are globs of the repositories sent ("*" matches any
	// characters, "/" included); RepositoryRegexp is an RE2 expression
	// that must match a whole name. An event is sent when either matches;
	// when both are empty every repository is sent.
	Repositories     []string
	RepositoryRegexp string
	// Actions are the actions sent (push, delete); empty sends both.
	Actions []string
	// IgnoredMediaTypes are target media types never sent
	// ("application/octet-stream" leaves blob events out).
	IgnoredMediaTypes []string
	// Timeout bounds one attempt (default DefaultTimeout).
	Timeout time.Duration
	// MaxAttempts bounds the attempts of one delivery, the first
	// included (default DefaultMaxAttempts).
	MaxAttempts int
	// Backoff is the wait before the second attempt; it doubles after
	// every failure up to MaxBackoff, each wait drawn between half and all
	// of it (defaults DefaultBackoff, DefaultMaxBackoff).
	Backoff, MaxBackoff time.Duration
	// QueueSize bounds the events waiting (default DefaultQueueSize).
	QueueSize int
}

// Options configure a Notifier.
type Options struct {
	Endpoints []Endpoint
	// Logger receives delivery failures (default slog.Default()).
	Logger *slog.Logger
	// Registerer, when set, receives the notifier's metrics.
	Registerer prometheus.Registerer
	// Transport sends the requests (default: a transport that refuses
	// link-local, multicast and unspecified addresses and uses no proxy).
	Transport http.RoundTripper
}

// Notifier fans events out to its endpoints.
type Notifier struct {
	endpoints []*endpoint
	log       *slog.Logger
	metrics   *metrics

	ctx    context.Context // cancelled when Close gives up waiting
	cancel context.CancelFunc
	closed atomic.Bool
	done   chan struct{} // closed by Close: workers drain and stop
	wg     sync.WaitGroup
}

// New checks the endpoints, compiles their filters and starts one worker
// per endpoint.
func New(opts Options) (*Notifier, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Transport == nil {
		opts.Transport = newTransport()
	}
	n := &Notifier{log: opts.Logger, metrics: newMetrics(), done: make(chan struct{})}
	client := &http.Client{
		Transport: opts.Transport,
		// A receiver that redirects is misconfigured; following it would
		// let it send moat's requests (and their signature) elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	seen := map[string]bool{}
	var errs []error
	for i, c := range opts.Endpoints {
		ep, err := newEndpoint(c, client, n)
		if err != nil {
			errs = append(errs, fmt.Errorf("notifications.endpoints[%d]: %w", i, err))
			continue
		}
		if seen[ep.name] {
			errs = append(errs, fmt.Errorf("notifications.endpoints[%d]: name %q is used twice", i, ep.name))
			continue
		}
		seen[ep.name] = true
		n.endpoints = append(n.endpoints, ep)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if opts.Registerer != nil {
		if err := n.metrics.register(opts.Registerer, n.endpoints); err != nil {
			return nil, err
		}
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	for _, ep := range n.endpoints {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			ep.run(n.ctx, n.done)
		}()
	}
	return n, nil
}

func newEndpoint(c Endpoint, client *http.Client, n *Notifier) (*endpoint, error) {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("url: %q is not an http(s) URL", c.URL)
	}
	f, err := newFilter(c)
	if err != nil {
		return nil, err
	}
	if c.Name == "" {
		c.Name = u.Host
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.Backoff <= 0 {
		c.Backoff = DefaultBackoff
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = max(DefaultMaxBackoff, c.Backoff)
	}
	if c.QueueSize <= 0 {
		c.QueueSize = DefaultQueueSize
	}
	return &endpoint{
		Endpoint: c,
		name:     c.Name,
		filter:   f,
		client:   client,
		queue:    make(chan Event, c.QueueSize),
		log:      n.log.With("endpoint", c.Name),
		counts:   n.metrics.of(c.Name),
	}, nil
}

// Publish queues e for every endpoint whose filter it passes. It never
// blocks: an endpoint whose queue is full drops the event and counts it.
func (n *Notifier) Publish(e Event) {
	if n == nil {
		return
	}
	if n.closed.Load() {
		for _, ep := range n.endpoints {
			if ep.filter.match(&e) {
				ep.counts.dropped.Inc()
			}
		}
		return
	}
	for _, ep := range n.endpoints {
		if !ep.filter.match(&e) {
			continue
		}
		select {
		case ep.queue <- e:
		default:
			ep.counts.dropped.Inc()
			if ep.warnDrop() {
				ep.log.Warn("notification queue full: dropping events", "queueSize", cap(ep.queue))
			}
		}
	}
}

// Close stops taking events and delivers those queued, until ctx ends;
// then it abandons what is left (counted as failed).
func (n *Notifier) Close(ctx context.Context) error {
	if n == nil || n.closed.Swap(true) {
		return nil
	}
	close(n.done)
	finished := make(chan struct{})
	go func() {
		n.wg.Wait()
		close(finished)
	}()
	select {
	case <-finished:
		n.cancel()
		return nil
	case <-ctx.Done():
		n.cancel()
		<-finished
		return ctx.Err()
	}
}

// Queued is how many events wait for the named endpoint.
func (n *Notifier) Queued(name string) int {
	for _, ep := range n.endpoints {
		if ep.name == name {
			return len(ep.queue)
		}
	}
	return 0
}
