package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"

	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/errcode"
)

// registryResource is GET /admin/v1/registry.
type registryResource struct {
	Name       string          `json:"name"`
	Properties auth.Properties `json:"properties"`
}

func (a *API) registry(w http.ResponseWriter, r *request) error {
	if len(r.seg) != 1 {
		return errcode.NotFound.New("no such endpoint")
	}
	switch r.Method {
	case http.MethodGet:
		props, etag := a.dir.Properties()
		w.Header().Set("ETag", etag)
		return writeJSON(w, http.StatusOK, registryResource{Name: a.opts.Service(), Properties: props})
	case http.MethodPatch:
		return a.patchRegistry(w, r)
	}
	return methodNotAllowed("GET, PATCH")
}

// patchRegistry applies a JSON merge patch (RFC 7396) of
// {"properties":{…}}; If-Match guards concurrent edits.
func (a *API) patchRegistry(w http.ResponseWriter, r *request) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return errcode.Invalid.New("reading the body failed")
	}
	var patch map[string]any
	if err := json.Unmarshal(body, &patch); err != nil {
		return errcode.Invalid.New("the body must be a JSON object (a merge patch of {\"properties\":{…}})")
	}
	for k := range patch {
		if k != "properties" {
			return errcode.Invalid.New("only properties can be changed; unknown field " + k)
		}
	}
	props, etag, err := a.dir.UpdateProperties(r.Context(), r.Header.Get("If-Match"), func(p *auth.Properties) error {
		cur, err := json.Marshal(registryResource{Properties: *p})
		if err != nil {
			return err
		}
		var doc any
		if err := json.Unmarshal(cur, &doc); err != nil {
			return err
		}
		merged, err := json.Marshal(mergePatch(doc, map[string]any(patch)))
		if err != nil {
			return err
		}
		var out registryResource
		dec := json.NewDecoder(bytes.NewReader(merged))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&out); err != nil {
			return errcode.Invalid.New("invalid properties: " + err.Error())
		}
		*p = out.Properties
		return nil
	})
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag)
	return writeJSON(w, http.StatusOK, registryResource{Name: a.opts.Service(), Properties: props})
}

// mergePatch applies an RFC 7396 merge patch to target.
func mergePatch(target, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	tm, ok := target.(map[string]any)
	if !ok {
		tm = map[string]any{}
	}
	for k, v := range pm {
		if v == nil {
			delete(tm, k)
		} else {
			tm[k] = mergePatch(tm[k], v)
		}
	}
	return tm
}

func (a *API) rotateKeys(w http.ResponseWriter, r *request) error {
	if r.Method != http.MethodPost {
		return methodNotAllowed("POST")
	}
	if err := r.need(auth.LevelOwner); err != nil {
		return err
	}
	kid, err := a.opts.Keys.Rotate()
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]string{"kid": kid})
}
