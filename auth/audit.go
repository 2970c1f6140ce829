package auth

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moat-registry/moat/policy"
	"github.com/moat-registry/moat/storage"
)

// AuditEntry is one audit log record (SPEC §7).
type AuditEntry struct {
	Time       time.Time `json:"time"`
	ClientIP   string    `json:"clientIP"`
	Endpoint   string    `json:"endpoint"`
	Principal  string    `json:"principal"`
	Repository string    `json:"repository"`
	Action     string    `json:"action"`
	Allowed    bool      `json:"allowed"`
	Stage      string    `json:"stage"`
	Reason     string    `json:"reason"`
	Rule       string    `json:"rule"`
	Audit      bool      `json:"audit"`
}

// Auditor writes denials (and Audit-mode would-be denials) to the audit
// log. Record never blocks the request: entries queue and a background
// writer stores them in batches, one transaction each. When the queue is
// full, entries are dropped and counted.
type Auditor struct {
	log     storage.AuditLog
	logger  *slog.Logger
	queue   chan auditItem
	dropped atomic.Uint64
	// OnDecision, when set, sees every recorded decision (metrics).
	onDecision func(stage policy.Stage, reason policy.Reason, allowed bool)

	once sync.Once
	done chan struct{}
}

// NewAuditor starts the background writer; Close stops it after a flush.
func NewAuditor(log storage.AuditLog, logger *slog.Logger, onDecision func(policy.Stage, policy.Reason, bool)) *Auditor {
	a := &Auditor{log: log, logger: logger, queue: make(chan auditItem, 8192), onDecision: onDecision, done: make(chan struct{})}
	go a.run()
	return a
}

// Record counts a decision and queues it for the log when it is a denial
// or an Audit-mode would-be denial.
func (a *Auditor) Record(e AuditEntry, stage policy.Stage, reason policy.Reason) {
	if a == nil {
		return
	}
	if a.onDecision != nil {
		a.onDecision(stage, reason, e.Allowed)
	}
	if e.Allowed && !e.Audit {
		return
	}
	select {
	case a.queue <- auditItem{entry: e}:
	default:
		a.dropped.Add(1)
	}
}

// auditItem is an entry, or with synced set a marker that Sync waits on.
type auditItem struct {
	entry  AuditEntry
	synced chan struct{}
}

// Dropped counts entries lost to a full queue.
func (a *Auditor) Dropped() uint64 { return a.dropped.Load() }

func (a *Auditor) run() {
	defer close(a.done)
	batch := make([][]byte, 0, 256)
	var waiters []chan struct{}
	add := func(it auditItem) {
		if it.synced != nil {
			waiters = append(waiters, it.synced)
			return
		}
		b, _ := json.Marshal(it.entry)
		batch = append(batch, b)
	}
	flush := func() {
		if len(batch) > 0 {
			if err := a.log.AppendAudit(context.Background(), batch); err != nil {
				a.logger.Error("writing the audit log", "err", err, "entries", len(batch))
			}
			batch = batch[:0]
		}
		for _, w := range waiters {
			close(w)
		}
		waiters = waiters[:0]
	}
	for it := range a.queue {
		add(it)
		// Take whatever else is queued, up to a batch.
	more:
		for len(batch) < cap(batch) {
			select {
			case it, ok := <-a.queue:
				if !ok {
					break more
				}
				add(it)
			default:
				break more
			}
		}
		flush()
	}
	flush()
}

// Sync waits until every entry recorded before it is stored.
func (a *Auditor) Sync() {
	ch := make(chan struct{})
	a.queue <- auditItem{synced: ch}
	<-ch
}

// Close flushes and stops the writer.
func (a *Auditor) Close() {
	a.once.Do(func() {
		close(a.queue)
		<-a.done
	})
}

// AuditQuery selects audit entries.
type AuditQuery struct {
	Stage   string // "" for any
	Allowed *bool
	Since   time.Time
	Limit   int
}

// QueryAudit returns entries newest first.
func QueryAudit(ctx context.Context, log storage.AuditLog, q AuditQuery) ([]AuditEntry, error) {
	if q.Limit <= 0 || q.Limit > 10_000 {
		q.Limit = 1000
	}
	out := []AuditEntry{}
	err := log.ScanAudit(ctx, func(b []byte) bool {
		var e AuditEntry
		if json.Unmarshal(b, &e) != nil {
			return true
		}
		if !q.Since.IsZero() && e.Time.Before(q.Since) {
			return false
		}
		if q.Stage != "" && e.Stage != q.Stage {
			return true
		}
		if q.Allowed != nil && e.Allowed != *q.Allowed {
			return true
		}
		out = append(out, e)
		return len(out) < q.Limit
	})
	return out, err
}
