package rest

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/streamhouse/streamhouse/internal/sqlapi"
)

// The engine's refusals answer SPEC.md's statuses and codes; anything else
// is left to writeError's general rules.
func TestSQLErrorStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{&sqlapi.Error{Code: sqlapi.CodeParse, Message: "syntax error at line 1, column 8"}, http.StatusBadRequest, "parse_error"},
		{&sqlapi.Error{Code: sqlapi.CodeInvalid}, http.StatusBadRequest, "invalid_query"},
		{&sqlapi.Error{Code: sqlapi.CodeUnsupported}, http.StatusBadRequest, "unsupported_operation"},
		{&sqlapi.Error{Code: sqlapi.CodeResourceLimit}, http.StatusBadRequest, "resource_limit"},
		{fmt.Errorf("query: %w", &sqlapi.Error{Code: sqlapi.CodeTopicNotFound}), http.StatusNotFound, "topic_not_found"},
		{&sqlapi.Error{Code: sqlapi.CodeTimeout}, http.StatusRequestTimeout, "query_timeout"},
		{fmt.Errorf("new: %w", sqlapi.ErrUnavailable), http.StatusNotImplemented, codeNotImplemented},
	} {
		var ae *apiError
		if !errors.As(sqlError(tc.err), &ae) || ae.status != tc.status || ae.code != tc.code {
			t.Errorf("%v: %+v, want %d %s", tc.err, ae, tc.status, tc.code)
		}
	}
	plain := errors.New("store down")
	if got := sqlError(plain); got != plain {
		t.Errorf("other errors pass unchanged: %v", got)
	}
}
