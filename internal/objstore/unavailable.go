package objstore

import (
	"context"
	"errors"
	"net"
	"net/http"

	"github.com/aws/smithy-go"
)

// ErrUnavailable wraps a failure of the object store itself rather than of
// the request: unreachable, timing out, throttling, or answering with a
// server error. The call may succeed if retried later; front ends answer
// with their protocol's retriable code.
var ErrUnavailable = errors.New("object store unavailable")

// s3Transient reports whether an S3 call failed for a reason a later retry
// may not meet: no response at all (connection refused or reset, a
// timeout), a 5xx, 429 or 408 status, or an error code S3 documents as
// retriable. A caller's cancellation is not transient.
func s3Transient(err error) bool {
	if errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "RequestTimeTooSkewed", "Throttling", "ThrottlingException":
			return true
		}
	}
	switch code := statusCode(err); {
	case code == http.StatusNotImplemented:
		return false // the store lacks a feature; asking again cannot help
	case code >= 500, code == 429, code == 408:
		return true
	case code != 0:
		return false
	}
	var netErr net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr)
}
