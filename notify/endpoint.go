package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/moat-registry/moat/auth"
)

// endpoint is an Endpoint at work: its queue and its worker.
type endpoint struct {
	Endpoint
	name     string
	filter   filter
	client   *http.Client
	queue    chan Event
	log      *slog.Logger
	counts   counts
	lastWarn atomic.Int64 // unix seconds of the last "queue full" warning
}

// warnDrop rate-limits the "queue full" warning to one a minute.
func (ep *endpoint) warnDrop() bool {
	now := time.Now().Unix()
	last := ep.lastWarn.Load()
	return now-last >= 60 && ep.lastWarn.CompareAndSwap(last, now)
}

// run delivers batches until done is closed, then drains the queue.
func (ep *endpoint) run(ctx context.Context, done <-chan struct{}) {
	for {
		select {
		case e := <-ep.queue:
			ep.deliver(ctx, ep.batch(e))
		case <-done:
			for {
				select {
				case e := <-ep.queue:
					ep.deliver(ctx, ep.batch(e))
				default:
					return
				}
			}
		}
	}
}

// batch is first and whatever else is queued now, up to maxBatch events.
func (ep *endpoint) batch(first Event) []Event {
	events := []Event{first}
	for len(events) < maxBatch {
		select {
		case e := <-ep.queue:
			events = append(events, e)
		default:
			return events
		}
	}
	return events
}

// deliver posts one envelope, retrying with backoff; it counts the events
// delivered or failed.
func (ep *endpoint) deliver(ctx context.Context, events []Event) {
	body, err := json.Marshal(Envelope{Events: events})
	if err != nil {
		ep.counts.failed.Add(float64(len(events)))
		ep.log.Error("encoding notification", "err", err)
		return
	}
	sig := Sign(ep.Secret, body)
	for attempt := 1; ; attempt++ {
		retryAfter, err := ep.post(ctx, body, sig, attempt)
		if err == nil {
			ep.counts.delivered.Add(float64(len(events)))
			return
		}
		permanent := retryAfter < 0
		if permanent || attempt >= ep.MaxAttempts || ctx.Err() != nil {
			ep.counts.failed.Add(float64(len(events)))
			ep.log.Warn("notification not delivered", "events", len(events), "attempts", attempt, "err", err)
			return
		}
		ep.log.Debug("notification attempt failed; retrying", "attempt", attempt, "err", err)
		wait := max(ep.backoff(attempt), min(retryAfter, ep.MaxBackoff))
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			ep.counts.failed.Add(float64(len(events)))
			ep.log.Warn("notification not delivered: shutting down", "events", len(events), "attempts", attempt)
			return
		}
	}
}

// backoff is the wait after the attempt-th failure: Backoff doubled
// attempt-1 times, at most MaxBackoff, drawn between half and all of it.
func (ep *endpoint) backoff(attempt int) time.Duration {
	d := ep.Backoff
	for i := 1; i < attempt && d < ep.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, ep.MaxBackoff)
	half := d / 2
	return half + rand.N(d-half+1)
}

// post makes one attempt. On failure, retryAfter is negative when a retry
// cannot help (the receiver refused the request), else the wait the
// receiver asked for (0 when none).
func (ep *endpoint) post(ctx context.Context, body []byte, sig string, attempt int) (retryAfter time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, ep.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		return -1, err
	}
	for k, vs := range ep.Header {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", MediaType)
	req.Header.Set(SignatureHeader, sig)
	req.Header.Set(AttemptHeader, strconv.Itoa(attempt))
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "moat-notifications")
	}
	resp, err := ep.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return 0, nil
	case c == http.StatusRequestTimeout || c == http.StatusTooManyRequests || c >= 500:
		return parseRetryAfter(resp.Header.Get("Retry-After")), fmt.Errorf("receiver answered %s", resp.Status)
	default:
		return -1, fmt.Errorf("receiver answered %s; not retrying", resp.Status)
	}
}

// parseRetryAfter reads a Retry-After in seconds (0 when absent or a date).
func parseRetryAfter(s string) time.Duration {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}

// newTransport is the default transport: no proxy, and no connections to
// link-local (cloud metadata), multicast or unspecified addresses, checked
// on the resolved address.
func newTransport() *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, Control: auth.RefuseLinkLocal}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       time.Minute,
		ResponseHeaderTimeout: 30 * time.Second,
	}
}
