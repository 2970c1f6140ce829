// Package errcode defines the error codes of the OCI distribution spec and
// the one function that writes them in the OCI error shape:
//
//	{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry","detail":…}]}
//
// The admin API uses the same shape with its own codes. The package imports
// nothing of the project, so every server package can depend on it.
package errcode

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
)

// Code is an error code with the HTTP status it is answered with and a
// default message.
type Code struct {
	Value   string
	Status  int
	Message string
}

// The codes of the OCI distribution spec (v1.1), plus TOOMANYREQUESTS and
// the codes the admin API adds.
var (
	BlobUnknown         = Code{"BLOB_UNKNOWN", http.StatusNotFound, "blob unknown to registry"}
	BlobUploadInvalid   = Code{"BLOB_UPLOAD_INVALID", http.StatusBadRequest, "blob upload invalid"}
	BlobUploadUnknown   = Code{"BLOB_UPLOAD_UNKNOWN", http.StatusNotFound, "blob upload unknown to registry"}
	DigestInvalid       = Code{"DIGEST_INVALID", http.StatusBadRequest, "provided digest did not match uploaded content"}
	ManifestBlobUnknown = Code{"MANIFEST_BLOB_UNKNOWN", http.StatusBadRequest, "manifest references a manifest or blob unknown to registry"}
	ManifestInvalid     = Code{"MANIFEST_INVALID", http.StatusBadRequest, "manifest invalid"}
	ManifestUnknown     = Code{"MANIFEST_UNKNOWN", http.StatusNotFound, "manifest unknown to registry"}
	NameInvalid         = Code{"NAME_INVALID", http.StatusBadRequest, "invalid repository name"}
	NameUnknown         = Code{"NAME_UNKNOWN", http.StatusNotFound, "repository name not known to registry"}
	SizeInvalid         = Code{"SIZE_INVALID", http.StatusBadRequest, "provided length did not match content length"}
	Unauthorized        = Code{"UNAUTHORIZED", http.StatusUnauthorized, "authentication required"}
	Denied              = Code{"DENIED", http.StatusForbidden, "requested access to the resource is denied"}
	Unsupported         = Code{"UNSUPPORTED", http.StatusMethodNotAllowed, "the operation is unsupported"}
	TooManyRequests     = Code{"TOOMANYREQUESTS", http.StatusTooManyRequests, "too many requests"}

	// PaginationNumberInvalid answers a bad n or last (Distribution's code).
	PaginationNumberInvalid = Code{"PAGINATION_NUMBER_INVALID", http.StatusBadRequest, "invalid number of results requested"}

	// RangeInvalid answers an upload chunk that does not continue the
	// upload, and a blob GET whose Range is not satisfiable.
	RangeInvalid = Code{"BLOB_UPLOAD_INVALID", http.StatusRequestedRangeNotSatisfiable, "requested range not satisfiable"}
	// TooLarge answers a body over a configured limit.
	TooLarge = Code{"SIZE_INVALID", http.StatusRequestEntityTooLarge, "content too large"}
	// Unavailable answers when storage cannot serve the request.
	Unavailable = Code{"UNAVAILABLE", http.StatusServiceUnavailable, "service unavailable"}
	// Internal answers a server-side failure; its message never carries details.
	Internal = Code{"INTERNAL", http.StatusInternalServerError, "internal server error"}

	// Admin API codes.
	NotFound           = Code{"NOT_FOUND", http.StatusNotFound, "resource not found"}
	Invalid            = Code{"INVALID", http.StatusBadRequest, "invalid request"}
	Conflict           = Code{"CONFLICT", http.StatusConflict, "conflict"}
	PreconditionFailed = Code{"PRECONDITION_FAILED", http.StatusPreconditionFailed, "precondition failed"}
	MethodNotAllowed   = Code{"METHOD_NOT_ALLOWED", http.StatusMethodNotAllowed, "method not allowed"}
)

// Error is one error of the OCI error body. It carries the headers its
// answer needs (a WWW-Authenticate challenge, Retry-After, Range …).
type Error struct {
	Code    Code
	Message string
	Detail  any
	Header  http.Header
	// Err is the underlying cause; it is logged, never sent.
	Err error
}

// New returns an error with code c and, when message is empty, the code's
// default message.
func (c Code) New(message string) *Error {
	return &Error{Code: c, Message: message}
}

// WithDetail returns an error with code c, its default message and detail.
func (c Code) WithDetail(detail any) *Error {
	return &Error{Code: c, Detail: detail}
}

// Wrap returns an error with code c that keeps err as its (unsent) cause.
func (c Code) Wrap(err error) *Error {
	return &Error{Code: c, Err: err}
}

func (e *Error) Error() string {
	msg := e.message()
	if e.Err != nil {
		return e.Code.Value + ": " + msg + ": " + e.Err.Error()
	}
	return e.Code.Value + ": " + msg
}

func (e *Error) Unwrap() error { return e.Err }

func (e *Error) message() string {
	if e.Message != "" {
		return e.Message
	}
	return e.Code.Message
}

// SetHeader sets an answer header and returns e.
func (e *Error) SetHeader(key, value string) *Error {
	if e.Header == nil {
		e.Header = http.Header{}
	}
	e.Header.Set(key, value)
	return e
}

type wireError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

type wireBody struct {
	Errors []wireError `json:"errors"`
}

// Body is the JSON body of err in the OCI error shape.
func Body(err error) []byte {
	e := From(err)
	b, _ := json.Marshal(wireBody{Errors: []wireError{{Code: e.Code.Value, Message: e.message(), Detail: e.Detail}}})
	return b
}

// From turns any error into an *Error; an error that is not one becomes
// Internal with err as its hidden cause.
func From(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return Internal.Wrap(err)
}

// Write answers err in the OCI error shape. A HEAD request gets the status
// and headers only.
func Write(w http.ResponseWriter, r *http.Request, err error) {
	e := From(err)
	h := w.Header()
	for k, v := range e.Header {
		h[k] = v
	}
	body := Body(e)
	if e.Code.Status >= 500 && r != nil {
		if id := RequestID(r.Context()); id != "" {
			body = Body(&Error{Code: e.Code, Message: e.message() + " (request id " + id + ")", Detail: e.Detail})
		}
	}
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(e.Code.Status)
	if r == nil || r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}
