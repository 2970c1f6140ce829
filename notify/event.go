// Package notify delivers webhooks when content is pushed to or deleted
// from the registry, in the envelope of CNCF Distribution's notifications
// so that receivers written for Distribution (scanners, CI triggers) work
// unchanged.
//
// Publish never blocks: each endpoint has a bounded queue and a worker
// that posts batches of events, signs every body with HMAC-SHA256 and
// retries failures with exponential backoff and jitter, a bounded number
// of times. An event that finds its endpoint's queue full is dropped and
// counted.
package notify

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// MediaType is the Content-Type of an envelope, as in Distribution.
const MediaType = "application/vnd.docker.distribution.events.v1+json"

// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the body
// under the endpoint's secret.
const SignatureHeader = "X-Moat-Signature"

// AttemptHeader is the attempt number of a delivery, 1 for the first.
const AttemptHeader = "X-Moat-Delivery-Attempt"

// Actions of events.
const (
	ActionPush   = "push"
	ActionDelete = "delete"
)

// Envelope is the body of a delivery: one or more events.
type Envelope struct {
	Events []Event `json:"events"`
}

// Event is one change to a repository, in Distribution's shape.
type Event struct {
	// ID is unique per event (a random UUID).
	ID        string    `json:"id"`
	Timestamp time.Time `json:"timestamp"`
	// Action is "push" or "delete".
	Action  string  `json:"action"`
	Target  Target  `json:"target"`
	Request Request `json:"request"`
	Actor   Actor   `json:"actor"`
	Source  Source  `json:"source"`
}

// Target is the content the event is about.
type Target struct {
	MediaType string `json:"mediaType,omitempty"`
	Size      int64  `json:"size,omitempty"`
	Digest    string `json:"digest,omitempty"`
	// Length repeats Size, as Distribution's older receivers read it.
	Length     int64  `json:"length,omitempty"`
	Repository string `json:"repository"`
	URL        string `json:"url,omitempty"`
	Tag        string `json:"tag,omitempty"`
}

// Request describes the request that caused the event.
type Request struct {
	ID        string `json:"id,omitempty"`
	Addr      string `json:"addr,omitempty"`
	Host      string `json:"host,omitempty"`
	Method    string `json:"method,omitempty"`
	UserAgent string `json:"useragent,omitempty"`
}

// Actor is who caused the event; Name is empty when not known.
type Actor struct {
	Name string `json:"name,omitempty"`
}

// Source is the registry instance that emitted the event.
type Source struct {
	Addr       string `json:"addr,omitempty"`
	InstanceID string `json:"instanceID,omitempty"`
}

// NewID returns a random (version 4) UUID.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Sign is the SignatureHeader value of body under secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether signature is the SignatureHeader value of body
// under secret, in constant time. Receivers written in Go can use it.
func Verify(secret, body []byte, signature string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(signature))
}
