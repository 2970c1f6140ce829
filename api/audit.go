package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/errcode"
	"github.com/moat-registry/moat/policy"
)

// audit serves GET /audit?stage=&allowed=&since=&limit= (newest first).
func (a *API) audit(w http.ResponseWriter, r *request) error {
	if len(r.seg) != 1 {
		return errcode.NotFound.New("no such endpoint")
	}
	if r.Method != http.MethodGet {
		return methodNotAllowed("GET")
	}
	q := r.URL.Query()
	var aq auth.AuditQuery
	if s := q.Get("stage"); s != "" {
		if _, ok := policy.ParseStage(s); !ok {
			return errcode.Invalid.New("stage must be network, authn or authz")
		}
		aq.Stage = s
	}
	if s := q.Get("allowed"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return errcode.Invalid.New("allowed must be true or false")
		}
		aq.Allowed = &b
	}
	if s := q.Get("since"); s != "" {
		t, err := parseSince(s, time.Now())
		if err != nil {
			return errcode.Invalid.New("since must be RFC 3339 or a duration like 1h")
		}
		aq.Since = t
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 || n > 10000 {
			return errcode.Invalid.New("limit must be 1–10000")
		}
		aq.Limit = n
	}
	if a.opts.Auditor != nil {
		a.opts.Auditor.Sync()
	}
	entries, err := auth.QueryAudit(r.Context(), a.opts.Audit, aq)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, struct {
		Value []auth.AuditEntry `json:"value"`
	}{entries})
}

// parseSince accepts RFC 3339 or a duration back from now ("1h", "90d").
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := parseLifetime(s)
	if err != nil {
		return time.Time{}, err
	}
	return now.Add(-d), nil
}

// evaluate serves POST /policy/evaluate (Reader).
func (a *API) evaluate(w http.ResponseWriter, r *request) error {
	if r.Method != http.MethodPost {
		return methodNotAllowed("POST")
	}
	var in auth.EvaluateInput
	if err := decode(r, &in); err != nil {
		return err
	}
	mine := in.ClientIP == ""
	if mine {
		// No address: the caller's own, as this server sees it (what
		// `moat check-health` asks).
		in.ClientIP = a.guard.ClientAddress(r.Request).String()
	}
	res, err := a.guard.Evaluate(in)
	if err != nil {
		return err
	}
	if mine {
		res.ClientIP = in.ClientIP
	}
	return writeJSON(w, http.StatusOK, res)
}
