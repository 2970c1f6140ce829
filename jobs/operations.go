package jobs

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Operation statuses (SPEC §7).
const (
	StatusRunning   = "Running"
	StatusSucceeded = "Succeeded"
	StatusFailed    = "Failed"
)

// Progress counts what an operation copied so far and what it expects.
type Progress struct {
	Bytes      int64 `json:"bytes"`
	TotalBytes int64 `json:"totalBytes"`
	Blobs      int   `json:"blobs"`
	TotalBlobs int   `json:"totalBlobs"`
}

// Operation is a long-running import or task run, polled at
// /admin/v1/operations/{id}.
type Operation struct {
	ID string `json:"id"`
	// Kind is "import", or the task type ("copy", "purge").
	Kind       string    `json:"kind"`
	Status     string    `json:"status"`
	Progress   Progress  `json:"progress"`
	Error      string    `json:"error,omitempty"`
	Source     string    `json:"source,omitempty"`
	Target     string    `json:"target,omitempty"`
	Digest     string    `json:"digest,omitempty"`
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
}

// operations keeps operations in memory: those running (at most
// maxRunning) and those that finished in the last day (at most
// maxOperations).
type operations struct {
	mu  sync.Mutex
	ops map[string]*Operation
}

const (
	maxOperations   = 1000
	operationMaxAge = 24 * time.Hour
	// maxRunning bounds the imports and task runs running at once.
	maxRunning = 16
)

// ErrTooManyRunning refuses an import or a task run while maxRunning
// operations run.
var ErrTooManyRunning = fmt.Errorf("%d imports and task runs are running already; try again later", maxRunning)

func newOperationID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// start records a new running operation, or fails with ErrTooManyRunning.
func (o *operations) start(kind, source, target string) (*Operation, error) {
	op := &Operation{ID: newOperationID(), Kind: kind, Status: StatusRunning, Source: source, Target: target, StartedAt: time.Now().UTC()}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ops == nil {
		o.ops = map[string]*Operation{}
	}
	running := 0
	for _, op := range o.ops {
		if op.Status == StatusRunning {
			running++
		}
	}
	if running >= maxRunning {
		return nil, ErrTooManyRunning
	}
	o.pruneLocked()
	o.ops[op.ID] = op
	return op, nil
}

// pruneLocked forgets old finished operations (running ones are bounded
// by maxRunning).
func (o *operations) pruneLocked() {
	cutoff := time.Now().Add(-operationMaxAge)
	var done []*Operation
	for id, op := range o.ops {
		if op.Status != StatusRunning {
			if op.FinishedAt.Before(cutoff) {
				delete(o.ops, id)
				continue
			}
			done = append(done, op)
		}
	}
	if len(o.ops) < maxOperations {
		return
	}
	sort.Slice(done, func(i, j int) bool { return done[i].FinishedAt.Before(done[j].FinishedAt) })
	for _, op := range done[:min(len(done), len(o.ops)-maxOperations+1)] {
		delete(o.ops, op.ID)
	}
}

// get returns a copy of an operation.
func (o *operations) get(id string) (Operation, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	op := o.ops[id]
	if op == nil {
		return Operation{}, false
	}
	return *op, true
}

func (o *operations) update(op *Operation, fn func(*Operation)) {
	o.mu.Lock()
	fn(op)
	o.mu.Unlock()
}

func (o *operations) finish(op *Operation, digest string, err error) {
	o.update(op, func(op *Operation) {
		op.FinishedAt = time.Now().UTC()
		op.Digest = digest
		if err != nil {
			op.Status, op.Error = StatusFailed, err.Error()
			return
		}
		op.Status = StatusSucceeded
		// What was already there counts as copied.
		op.Progress.Bytes, op.Progress.Blobs = max(op.Progress.Bytes, op.Progress.TotalBytes), max(op.Progress.Blobs, op.Progress.TotalBlobs)
	})
}
