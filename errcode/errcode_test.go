package errcode_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/moat-registry/moat/errcode"
)

type wireBody struct {
	Errors []struct {
		Code    string          `json:"code"`
		Message string          `json:"message"`
		Detail  json.RawMessage `json:"detail"`
	} `json:"errors"`
}

func TestWriteCodes(t *testing.T) {
	tests := []struct {
		name   string
		code   errcode.Code
		value  string
		status int
	}{
		{"blob unknown", errcode.BlobUnknown, "BLOB_UNKNOWN", 404},
		{"blob upload invalid", errcode.BlobUploadInvalid, "BLOB_UPLOAD_INVALID", 400},
		{"blob upload unknown", errcode.BlobUploadUnknown, "BLOB_UPLOAD_UNKNOWN", 404},
		{"digest invalid", errcode.DigestInvalid, "DIGEST_INVALID", 400},
		{"manifest blob unknown", errcode.ManifestBlobUnknown, "MANIFEST_BLOB_UNKNOWN", 400},
		{"manifest invalid", errcode.ManifestInvalid, "MANIFEST_INVALID", 400},
		{"manifest unknown", errcode.ManifestUnknown, "MANIFEST_UNKNOWN", 404},
		{"name invalid", errcode.NameInvalid, "NAME_INVALID", 400},
		{"name unknown", errcode.NameUnknown, "NAME_UNKNOWN", 404},
		{"size invalid", errcode.SizeInvalid, "SIZE_INVALID", 400},
		{"unauthorized", errcode.Unauthorized, "UNAUTHORIZED", 401},
		{"denied", errcode.Denied, "DENIED", 403},
		{"unsupported", errcode.Unsupported, "UNSUPPORTED", 405},
		{"too many requests", errcode.TooManyRequests, "TOOMANYREQUESTS", 429},
		{"range invalid", errcode.RangeInvalid, "BLOB_UPLOAD_INVALID", 416},
		{"too large", errcode.TooLarge, "SIZE_INVALID", 413},
		{"unavailable", errcode.Unavailable, "UNAVAILABLE", 503},
		{"internal", errcode.Internal, "INTERNAL", 500},
		{"not found", errcode.NotFound, "NOT_FOUND", 404},
		{"invalid", errcode.Invalid, "INVALID", 400},
		{"conflict", errcode.Conflict, "CONFLICT", 409},
		{"precondition failed", errcode.PreconditionFailed, "PRECONDITION_FAILED", 412},
		{"method not allowed", errcode.MethodNotAllowed, "METHOD_NOT_ALLOWED", 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				rec := httptest.NewRecorder()
				errcode.Write(rec, httptest.NewRequest(method, "/v2/", nil), tt.code.New(""))
				if rec.Code != tt.status {
					t.Errorf("%s: status %d, want %d", method, rec.Code, tt.status)
				}
				if ct := rec.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
					t.Errorf("%s: Content-Type %q", method, ct)
				}
				body := rec.Body.Bytes()
				if method == http.MethodHead {
					if len(body) != 0 {
						t.Errorf("HEAD answered a body: %s", body)
					}
					continue
				}
				if cl := rec.Header().Get("Content-Length"); cl != strconv.Itoa(len(body)) {
					t.Errorf("Content-Length %q for %d bytes", cl, len(body))
				}
				var wb wireBody
				if err := json.Unmarshal(body, &wb); err != nil {
					t.Fatalf("body %s: %v", body, err)
				}
				if len(wb.Errors) != 1 {
					t.Fatalf("body %s: want one error", body)
				}
				e := wb.Errors[0]
				if e.Code != tt.value || e.Message != tt.code.Message || e.Message == "" {
					t.Errorf("body %s: want code %s and message %q", body, tt.value, tt.code.Message)
				}
				if e.Detail != nil {
					t.Errorf("detail %s present without one set", e.Detail)
				}
			}
		})
	}
}

func TestWriteError(t *testing.T) {
	cause := errors.New("disk on fire")
	tests := []struct {
		name       string
		err        error
		status     int
		wantBody   string
		wantHeader http.Header
	}{
		{
			name:     "own message",
			err:      errcode.NameInvalid.New("bad name"),
			status:   400,
			wantBody: `{"errors":[{"code":"NAME_INVALID","message":"bad name"}]}`,
		},
		{
			name:     "detail",
			err:      errcode.BlobUnknown.WithDetail(map[string]string{"digest": "sha256:x"}),
			status:   404,
			wantBody: `{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry","detail":{"digest":"sha256:x"}}]}`,
		},
		{
			name:     "wrapped cause is not sent",
			err:      errcode.Unavailable.Wrap(cause),
			status:   503,
			wantBody: `{"errors":[{"code":"UNAVAILABLE","message":"service unavailable"}]}`,
		},
		{
			name:     "plain error becomes internal",
			err:      cause,
			status:   500,
			wantBody: `{"errors":[{"code":"INTERNAL","message":"internal server error"}]}`,
		},
		{
			name:     "wrapped errcode error is found",
			err:      fmt.Errorf("context: %w", errcode.ManifestUnknown.New("")),
			status:   404,
			wantBody: `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown to registry"}]}`,
		},
		{
			name: "headers",
			err: errcode.Unauthorized.New("").
				SetHeader("WWW-Authenticate", `Bearer realm="https://r/oauth2/token",service="r"`).
				SetHeader("Retry-After", "3"),
			status:   401,
			wantBody: `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`,
			wantHeader: http.Header{
				"Www-Authenticate": {`Bearer realm="https://r/oauth2/token",service="r"`},
				"Retry-After":      {"3"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				rec := httptest.NewRecorder()
				errcode.Write(rec, httptest.NewRequest(method, "/v2/x/manifests/y", nil), tt.err)
				if rec.Code != tt.status {
					t.Errorf("%s: status %d, want %d", method, rec.Code, tt.status)
				}
				for k, v := range tt.wantHeader {
					if got := rec.Header().Values(k); fmt.Sprint(got) != fmt.Sprint(v) {
						t.Errorf("%s: header %s = %q, want %q", method, k, got, v)
					}
				}
				want := tt.wantBody
				if method == http.MethodHead {
					want = ""
				}
				if got := rec.Body.String(); got != want {
					t.Errorf("%s: body %s, want %s", method, got, want)
				}
				if cl := rec.Header().Get("Content-Length"); cl != strconv.Itoa(len(tt.wantBody)) {
					t.Errorf("%s: Content-Length %s, want %d", method, cl, len(tt.wantBody))
				}
			}
		})
	}
}

func TestErrorUnwrap(t *testing.T) {
	cause := errors.New("cause")
	e := errcode.Internal.Wrap(cause)
	if !errors.Is(e, cause) {
		t.Error("errors.Is does not find the cause")
	}
	if got, want := e.Error(), "INTERNAL: internal server error: cause"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got, want := errcode.NameInvalid.New("x").Error(), "NAME_INVALID: x"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
