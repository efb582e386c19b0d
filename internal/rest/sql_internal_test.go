package rest

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/streamhouse/streamhouse/internal/sql"
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
		{&sql.Error{Code: sql.CodeParse, Message: "syntax error at line 1, column 8"}, http.StatusBadRequest, "parse_error"},
		{&sql.Error{Code: sql.CodeInvalid}, http.StatusBadRequest, "invalid_query"},
		{&sql.Error{Code: sql.CodeUnsupported}, http.StatusBadRequest, "unsupported_operation"},
		{&sql.Error{Code: sql.CodeResourceLimit}, http.StatusBadRequest, "resource_limit"},
		{fmt.Errorf("query: %w", &sql.Error{Code: sql.CodeTopicNotFound}), http.StatusNotFound, "topic_not_found"},
		{&sql.Error{Code: sql.CodeTimeout}, http.StatusRequestTimeout, "query_timeout"},
		{fmt.Errorf("new: %w", sql.ErrUnavailable), http.StatusNotImplemented, codeNotImplemented},
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
