package objstore

import (
	"context"
	"errors"
	"net"
	"net/http"
	"syscall"
	"testing"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

func TestS3TransientErrors(t *testing.T) {
	t.Parallel()
	status := func(code int) error {
		return &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: code}}, Err: errors.New("x")}
	}
	s := &S3{}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"slow down", &smithy.GenericAPIError{Code: "SlowDown"}, true},
		{"503", status(503), true},
		{"500", status(500), true},
		{"429", status(429), true},
		{"403", status(403), false},
		{"access denied", &smithy.GenericAPIError{Code: "AccessDenied"}, false},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{"deadline", context.DeadlineExceeded, true},
		{"cancelled", context.Canceled, false},
	} {
		err := s.mapErr("get", "k", tc.err)
		if got := errors.Is(err, ErrUnavailable); got != tc.want {
			t.Errorf("%s: unavailable %v, want %v (%v)", tc.name, got, tc.want, err)
		}
	}
	if !errors.Is(ErrInjected, ErrUnavailable) {
		t.Error("an injected fault is not a transient failure")
	}
}
