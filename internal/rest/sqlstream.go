package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/streamhouse/streamhouse/internal/sqlapi"
)

// sqlStream runs a live query (SPEC.md: POST /api/v1/sql/stream): a
// SELECT … WHERE … over the records committed from now on, answered as
// application/x-ndjson, one JSON object per matching row (keys in the
// query's column order), written as the records are committed, until the
// query's LIMIT, the client leaving, or timeout_ms (any length; default
// SQL_TIMEOUT_MS). A query the engine refuses (parse, check, unknown
// topic) answers as POST /api/v1/sql does. Once it is accepted, the 200
// and the headers go out at once; an error after that (a conversion
// failing on a record, more new rows at once than SQL_MAX_ROWS) ends the
// stream with a last line {"error", "message"}. So does losing access:
// {"error":"topic_authorization_failed"} once the ACLs no longer allow
// READ on the topic, {"error":"unauthorized"} once the caller's user is
// deleted or its login's AUTH_SESSION_LIFETIME_MS passes; no row of a
// record committed after that is sent.
func (s *server) sqlStream(w http.ResponseWriter, r *http.Request) error {
	q, err := s.sqlRequest(w, r, 0, false)
	if err != nil {
		return err
	}
	st, ok := s.sqlq.(sqlapi.Streamer)
	if s.sqlq == nil || !ok {
		return &apiError{status: http.StatusNotImplemented, code: codeNotImplemented, msg: sqlapi.ErrUnavailable.Error()}
	}
	select {
	case s.live <- struct{}{}:
		defer func() { <-s.live }()
	default:
		return &apiError{status: http.StatusBadRequest, code: string(sqlapi.CodeResourceLimit),
			msg: fmt.Sprintf("%d live queries are running, the most one agent runs at once", maxLiveQueries)}
	}
	// The query stays authorized: the engine asks again for READ on its
	// topic at every poll (sql.Access), and the guard ends the stream
	// when the caller's user is deleted or its login expires.
	ctx, guard := s.acl.Guard(r.Context(), s.users)
	defer guard.Stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if s.stopping != nil {
		go func() {
			select {
			case <-s.stopping:
				cancel() // the server is shutting down: end the stream
			case <-ctx.Done():
			}
		}()
	}
	rc := http.NewResponseController(w)
	started := false
	var keys [][]byte // each column's `"name":` (unique names)
	var line bytes.Buffer
	err = st.Stream(ctx, q, func(cols []sqlapi.Column, row []any) error {
		if !started {
			// Accepted (or a first row): the headers go out now, so a
			// client knows the query runs before anything matches.
			started = true
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
			if err := rc.Flush(); err != nil {
				return err
			}
		}
		if row == nil {
			return nil
		}
		if err := guard.Err(); err != nil {
			return err
		}
		if keys == nil {
			keys = rowKeys(cols)
		}
		line.Reset()
		line.WriteByte('{')
		for i, v := range row {
			if i > 0 {
				line.WriteByte(',')
			}
			line.Write(keys[i])
			b, err := json.Marshal(v)
			if err != nil {
				return err
			}
			line.Write(b)
		}
		line.WriteString("}\n")
		if _, err := w.Write(line.Bytes()); err != nil {
			return err // the client left
		}
		return rc.Flush()
	})
	if err != nil {
		if gerr := guard.Err(); gerr != nil {
			err = gerr // the guard ended it
		}
	}
	if !started {
		if err != nil && (ctx.Err() == nil || guard.Err() != nil) {
			return sqlError(err)
		}
		// Ended before being accepted without an error (LIMIT 0): an
		// empty stream.
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		return nil
	}
	if err != nil && (ctx.Err() == nil || guard.Err() != nil) {
		body := errorBody{Error: codeInternal, Message: err.Error()}
		var qe *sqlapi.Error
		if errors.As(err, &qe) {
			body = errorBody{Error: string(qe.Code), Message: qe.Message}
		} else if ab, ok := streamErrorBody(err); ok {
			body = ab // the ACLs or the login no longer allow it
		}
		b, _ := json.Marshal(body)
		_, _ = w.Write(append(b, '\n'))
	}
	return nil
}

// maxLiveQueries bounds the live queries one agent runs at once: each
// polls its topic's offsets and takes an engine connection per poll.
const maxLiveQueries = 16

// rowKeys returns each column's JSON object key, made unique: a name seen
// before gets _2, _3 … appended.
func rowKeys(cols []sqlapi.Column) [][]byte {
	seen := make(map[string]int, len(cols))
	out := make([][]byte, len(cols))
	for i, c := range cols {
		name := c.Name
		if n := seen[name]; n > 0 {
			name += "_" + strconv.Itoa(n+1)
		}
		seen[c.Name]++
		k, _ := json.Marshal(name)
		out[i] = append(k, ':')
	}
	return out
}
