package auth

import (
	"context"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/moat-registry/moat/storage"
)

const collTasks = "tasks"

// Task types.
const (
	TaskCopy  = "copy"
	TaskPurge = "purge"
)

// Task is a job owned by a `tasks` service instance; it runs inside moat
// under the instance's system-assigned identity, on demand or on a cron
// schedule. The jobs package validates and runs it.
type Task struct {
	Name     string     `json:"name"`
	Service  string     `json:"service"`
	Type     string     `json:"type"`
	Schedule string     `json:"schedule,omitempty"`
	Enabled  bool       `json:"enabled"`
	Copy     *CopyTask  `json:"copy,omitempty"`
	Purge    *PurgeTask `json:"purge,omitempty"`
	LastRun  *TaskRun   `json:"lastRun,omitempty"`
}

// CopyTask copies an image (with its platforms and referrers) from one
// registry to another. A reference without a registry host ("app:1") is
// this registry.
type CopyTask struct {
	Source    string `json:"source"`
	Target    string `json:"target"`
	PlainHTTP bool   `json:"plainHTTP,omitempty"`
}

// PurgeTask deletes tags older than OlderThan whose name matches Filter
// (a regular expression, anchored) except the Keep newest of them, as
// `acr purge --keep` does; with Untagged it also deletes manifests left
// without tags.
type PurgeTask struct {
	Repository string `json:"repository"`
	Filter     string `json:"filter,omitempty"`
	OlderThan  string `json:"olderThan"`
	Keep       int    `json:"keep,omitempty"`
	Untagged   bool   `json:"untagged,omitempty"`
}

// TaskRun is the outcome of a task's last run.
type TaskRun struct {
	Operation string    `json:"operation"`
	Status    string    `json:"status"`
	Started   time.Time `json:"startedAt"`
	Finished  time.Time `json:"finishedAt,omitzero"`
	Error     string    `json:"error,omitempty"`
}

func taskKey(service, task string) string { return service + "/" + task }

// Tasks lists the tasks of a service instance, or of all when service is
// empty.
func (d *Directory) Tasks(ctx context.Context, service string) ([]Task, error) {
	var out []Task
	err := d.docs.ViewDocuments(ctx, func(tx storage.DocTx) error {
		list, err := listJSON[Task](tx, collTasks)
		for _, t := range list {
			if service == "" || t.Service == service {
				out = append(out, *t)
			}
		}
		return err
	})
	sort.Slice(out, func(i, j int) bool {
		return taskKey(out[i].Service, out[i].Name) < taskKey(out[j].Service, out[j].Name)
	})
	return out, err
}

// GetTask returns one task.
func (d *Directory) GetTask(ctx context.Context, service, name string) (Task, error) {
	var t Task
	err := d.docs.ViewDocuments(ctx, func(tx storage.DocTx) error {
		return getJSON(tx, collTasks, taskKey(service, name), &t)
	})
	return t, err
}

// PutTask stores a task (validated by the caller) of a `tasks` instance.
func (d *Directory) PutTask(ctx context.Context, t Task) (Task, bool, error) {
	if !validName(t.Name) {
		return Task{}, false, invalid("name: %q must be 1–64 letters, digits, '.', '_' or '-'", t.Name)
	}
	created := false
	err := d.update(ctx, func(tx storage.DocTx) error {
		var svc Service
		if err := getJSON(tx, collServices, t.Service, &svc); err != nil {
			if errors.Is(err, ErrNotFound) {
				return invalid("service: no service instance named %q", t.Service)
			}
			return err
		}
		if svc.Type != ServiceTasks {
			return invalid("service: %q is a %s instance; tasks belong to tasks instances", t.Service, svc.Type)
		}
		var old Task
		switch err := getJSON(tx, collTasks, taskKey(t.Service, t.Name), &old); {
		case errors.Is(err, ErrNotFound):
			created = true
		case err != nil:
			return err
		default:
			t.LastRun = old.LastRun
		}
		return putJSON(tx, collTasks, taskKey(t.Service, t.Name), t)
	})
	return t, created, err
}

// SetTaskRun records a task's last run (no error if the task is gone).
func (d *Directory) SetTaskRun(ctx context.Context, service, name string, run TaskRun) error {
	err := d.update(ctx, func(tx storage.DocTx) error {
		var t Task
		if err := getJSON(tx, collTasks, taskKey(service, name), &t); err != nil {
			return err
		}
		t.LastRun = &run
		return putJSON(tx, collTasks, taskKey(service, name), t)
	})
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// DeleteTask removes a task.
func (d *Directory) DeleteTask(ctx context.Context, service, name string) error {
	return d.update(ctx, func(tx storage.DocTx) error { return deleteDoc(tx, collTasks, taskKey(service, name)) })
}

// deleteTasksTx removes every task of a service instance.
func deleteTasksTx(tx storage.DocTx, service string) error {
	var keys []string
	err := tx.List(collTasks, func(k string, _ []byte) error {
		if strings.HasPrefix(k, service+"/") {
			keys = append(keys, k)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := tx.Delete(collTasks, k); err != nil {
			return err
		}
	}
	return nil
}
