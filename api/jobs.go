package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/errcode"
	"github.com/moat-registry/moat/jobs"
	"github.com/moat-registry/moat/storage"
)

// importImage serves POST /import: 202 and the operation to poll.
func (a *API) importImage(w http.ResponseWriter, r *request) error {
	if len(r.seg) != 1 {
		return errcode.NotFound.New("no such endpoint")
	}
	if r.Method != http.MethodPost {
		return methodNotAllowed("POST")
	}
	var in jobs.ImportRequest
	if err := decode(r, &in); err != nil {
		return err
	}
	op, err := a.opts.Jobs.Import(in)
	if err != nil {
		return jobError(err)
	}
	return accepted(w, op)
}

func accepted(w http.ResponseWriter, op jobs.Operation) error {
	w.Header().Set("Location", Prefix+"/operations/"+op.ID)
	return writeJSON(w, http.StatusAccepted, op)
}

// jobRetryAfter is the Retry-After of an import or task run refused
// because too many run.
const jobRetryAfter = "30"

func jobError(err error) error {
	var inv *jobs.InvalidError
	if errors.As(err, &inv) {
		return errcode.Invalid.New(inv.Error())
	}
	if errors.Is(err, jobs.ErrTooManyRunning) {
		return errcode.TooManyRequests.New(err.Error()).SetHeader("Retry-After", jobRetryAfter)
	}
	return err
}

// operation serves GET /operations/{id}.
func (a *API) operation(w http.ResponseWriter, r *request) error {
	if len(r.seg) != 2 {
		return errcode.NotFound.New("no such endpoint")
	}
	if r.Method != http.MethodGet {
		return methodNotAllowed("GET")
	}
	op, ok := a.opts.Jobs.Operation(r.seg[1])
	if !ok {
		return notFound("operation", r.seg[1])
	}
	return writeJSON(w, http.StatusOK, op)
}

// tasks serves /services/{name}/tasks, …/tasks/{task} and POST …/run.
func (a *API) tasks(w http.ResponseWriter, r *request) error {
	service := r.seg[1]
	if _, ok := a.dir.Snapshot().Service(service); !ok {
		return notFound("service", service)
	}
	ctx := r.Context()
	switch len(r.seg) {
	case 3:
		if r.Method != http.MethodGet {
			return methodNotAllowed("GET")
		}
		list, err := a.dir.Tasks(ctx, service)
		if err != nil {
			return err
		}
		return writeList(w, r, list, func(t auth.Task) string { return t.Name })
	case 4:
		name := r.seg[3]
		switch r.Method {
		case http.MethodGet:
			t, err := a.dir.GetTask(ctx, service, name)
			if err != nil {
				return err
			}
			return writeJSON(w, http.StatusOK, t)
		case http.MethodPut:
			in := auth.Task{Enabled: true}
			if err := decode(r, &in); err != nil {
				return err
			}
			if in.Name != "" && in.Name != name {
				return errcode.Invalid.New("name: the body names " + in.Name + ", the path " + name)
			}
			if in.Service != "" && in.Service != service {
				return errcode.Invalid.New("service: the body names " + in.Service + ", the path " + service)
			}
			in.Name, in.Service, in.LastRun = name, service, nil
			if err := jobs.CheckTask(&in); err != nil {
				return jobError(err)
			}
			t, isNew, err := a.dir.PutTask(ctx, in)
			if err != nil {
				return err
			}
			return created(w, isNew, t)
		case http.MethodDelete:
			if err := a.dir.DeleteTask(ctx, service, name); err != nil {
				return err
			}
			return noContent(w)
		}
		return methodNotAllowed("GET, PUT, DELETE")
	case 5:
		if r.seg[4] != "run" {
			break
		}
		if r.Method != http.MethodPost {
			return methodNotAllowed("POST")
		}
		op, err := a.opts.Jobs.RunTask(ctx, service, r.seg[3])
		if err != nil {
			return jobError(err)
		}
		return accepted(w, op)
	}
	return errcode.NotFound.New("no such endpoint")
}

// collectGarbage serves POST /gc: one garbage collection, answered with
// its report.
func (a *API) collectGarbage(w http.ResponseWriter, r *request) error {
	if len(r.seg) != 1 {
		return errcode.NotFound.New("no such endpoint")
	}
	if r.Method != http.MethodPost {
		return methodNotAllowed("POST")
	}
	in := struct {
		GracePeriod string `json:"gracePeriod"`
		Untagged    bool   `json:"untagged"`
		DryRun      bool   `json:"dryRun"`
		Force       bool   `json:"force"`
	}{}
	if err := decodeOptional(r, &in); err != nil {
		return err
	}
	grace := a.opts.GCGracePeriod
	if in.GracePeriod != "" {
		var err error
		if grace, err = parseLifetime(in.GracePeriod); err != nil {
			return errcode.Invalid.New("gracePeriod: " + err.Error())
		}
		// As gc.gracePeriod: a push in flight needs time to send its
		// manifest. A dry run deletes nothing; force takes the risk.
		if grace < time.Minute && !in.DryRun && !in.Force {
			return errcode.Invalid.New("gracePeriod: under 1m may delete what a push in flight is about to reference; set force to do it anyway")
		}
	}
	rep, err := a.opts.GC(r.Context(), storage.GCOptions{GracePeriod: grace, Untagged: in.Untagged, DryRun: in.DryRun})
	if errors.Is(err, storage.ErrBusy) {
		return errcode.Conflict.New(err.Error())
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rep)
}
