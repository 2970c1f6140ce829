package registry

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
)

// TestMapErrorBodies tells the client's broken request bodies (400) from
// the server's storage failures (507, 500).
func TestMapErrorBodies(t *testing.T) {
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	tests := []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"malformed chunk", bodyReadError{errors.New("invalid byte in chunk length")}, http.StatusBadRequest, "BLOB_UPLOAD_INVALID"},
		{"malformed chunk, wrapped", fmt.Errorf("append: %w", bodyReadError{errors.New("malformed chunked encoding")}), http.StatusBadRequest, "BLOB_UPLOAD_INVALID"},
		{"connection reset", bodyReadError{reset}, http.StatusBadRequest, "BLOB_UPLOAD_INVALID"},
		{"body shorter than Content-Length", bodyReadError{io.ErrUnexpectedEOF}, http.StatusBadRequest, "SIZE_INVALID"},
		{"disk full", &os.PathError{Op: "write", Path: "f", Err: syscall.ENOSPC}, http.StatusInsufficientStorage, "UNAVAILABLE"},
		{"quota", &os.PathError{Op: "write", Path: "f", Err: syscall.EDQUOT}, http.StatusInsufficientStorage, "UNAVAILABLE"},
		{"disk failure", &os.PathError{Op: "write", Path: "f", Err: syscall.EIO}, http.StatusInternalServerError, "INTERNAL"},
		{"connection reset not from the body", reset, http.StatusInternalServerError, "INTERNAL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mapError(tt.err)
			if e.Code.Status != tt.status || e.Code.Value != tt.code {
				t.Errorf("mapError(%v) = %d %s, want %d %s", tt.err, e.Code.Status, e.Code.Value, tt.status, tt.code)
			}
		})
	}
}

// TestRequestBodyEOF checks that the end of a body is io.EOF itself, as
// io.Copy and the storage's copy loops compare it with ==.
func TestRequestBodyEOF(t *testing.T) {
	b := requestBody{strings.NewReader("ab")}
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "ab" {
		t.Fatalf("ReadAll = %q, %v", got, err)
	}
	if _, err := b.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("Read at the end: %v, want io.EOF", err)
	}
	if _, err := (requestBody{iotest.ErrReader(errors.New("boom"))}).Read(make([]byte, 1)); !errors.As(err, new(bodyReadError)) {
		t.Fatalf("Read error %T, want bodyReadError", err)
	}
}
