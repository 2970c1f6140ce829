package server

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/moat-registry/moat/errcode"
	"github.com/moat-registry/moat/notify"
	"github.com/moat-registry/moat/registry"
)

// newNotifier builds the webhook notifier of the config, or nil when no
// endpoint is configured (then registries get no OnEvent at all).
func (s *Server) newNotifier() (*notify.Notifier, error) {
	cfg := s.cfg.Notifications
	if len(cfg.Endpoints) == 0 {
		return nil, nil
	}
	eps := make([]notify.Endpoint, 0, len(cfg.Endpoints))
	for i, c := range cfg.Endpoints {
		secret := c.Secret
		if c.SecretFile != "" {
			b, err := os.ReadFile(c.SecretFile)
			if err != nil {
				return nil, fmt.Errorf("notifications.endpoints[%d].secretFile: %w", i, err)
			}
			secret = strings.TrimRight(string(b), "\r\n")
		}
		h := http.Header{}
		for k, v := range c.Headers {
			h.Set(k, v)
		}
		eps = append(eps, notify.Endpoint{
			Name:              c.Name,
			URL:               c.URL,
			Secret:            []byte(secret),
			Header:            h,
			Repositories:      c.Repositories,
			RepositoryRegexp:  c.RepositoryRegexp,
			Actions:           c.Actions,
			IgnoredMediaTypes: c.IgnoredMediaTypes,
			Timeout:           time.Duration(c.Timeout),
			MaxAttempts:       c.MaxAttempts,
			Backoff:           time.Duration(c.Backoff),
			QueueSize:         c.QueueSize,
		})
	}
	return notify.New(notify.Options{Endpoints: eps, Logger: s.log.With("component", "notifications"), Registerer: s.metrics.reg})
}

// onEvent is the registry.Options.OnEvent that turns a registry's events
// into notifications (nil without a notifier). internal marks the
// in-process registry of imports and tasks, whose requests carry no
// public host.
func (s *Server) onEvent(internal bool) func(registry.Event) {
	if s.notifier == nil {
		return nil
	}
	instance := notify.NewID()
	hostname, _ := os.Hostname()
	return func(e registry.Event) {
		s.notifier.Publish(s.notification(e, internal, instance, hostname))
	}
}

// notification is the event of e in Distribution's shape.
func (s *Server) notification(e registry.Event, internal bool, instance, hostname string) notify.Event {
	mediaType := e.MediaType
	if mediaType == "" && e.Kind == registry.KindBlob {
		mediaType = "application/octet-stream" // what Distribution says of blobs
	}
	out := notify.Event{
		ID:        notify.NewID(),
		Timestamp: time.Now().UTC(),
		Action:    e.Action,
		Target: notify.Target{
			MediaType:  mediaType,
			Size:       e.Size,
			Length:     e.Size,
			Digest:     e.Digest,
			Repository: e.Repository,
			Tag:        e.Tag,
		},
		Source: notify.Source{InstanceID: instance},
	}
	if addr := s.Addr(); addr != nil {
		_, port, _ := net.SplitHostPort(addr.String())
		out.Source.Addr = net.JoinHostPort(hostname, port)
	}
	r := e.Request
	if r == nil {
		return out
	}
	out.Request = notify.Request{
		ID:        errcode.RequestID(r.Context()),
		Host:      r.Host,
		Method:    r.Method,
		UserAgent: r.UserAgent(),
	}
	if a := s.guard.ClientAddress(r); a.IsValid() {
		out.Request.Addr = a.String()
	} else {
		out.Request.Addr = r.RemoteAddr
	}
	out.Actor.Name = e.Actor
	out.Target.URL = s.targetURL(r, internal, e)
	return out
}

// targetURL is where the target can be fetched: publicURL when set, else
// the URL the request came to (the service's URL for in-process ones).
func (s *Server) targetURL(r *http.Request, internal bool, e registry.Event) string {
	base := s.cfg.PublicURL
	switch {
	case base != "":
	case internal:
		base = s.IssuerURL()
	case r.TLS != nil:
		base = "https://" + r.Host
	default:
		base = "http://" + r.Host
	}
	base = strings.TrimSuffix(base, "/")
	kind, ref := "manifests", e.Digest
	if e.Kind == registry.KindBlob {
		kind = "blobs"
	}
	if ref == "" {
		ref = e.Tag
	}
	return base + "/v2/" + e.Repository + "/" + kind + "/" + ref
}
