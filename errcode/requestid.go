package errcode

import "context"

type requestIDKey struct{}

// WithRequestID marks a request's context with its id, which Write puts
// into the message of server-side (5xx) errors so a user can quote it.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID is the id WithRequestID stored, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
