package rest_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/streamhouse/streamhouse/internal/rest"
)

// TestBadInput sends bad requests to every endpoint and checks the status,
// the error body, and that nothing stored changed.
func TestBadInput(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	e := newEnv(t, withMaxBody(limit))
	e.createTopic("orders", 2)
	e.produce(`{"topic":"orders","partition":0,"value":"a"}`)
	e.produce(`{"topic":"orders","partition":1,"value":"b"}`)
	e.must(e.post("/api/v1/consumer-groups/commit", `{"group_id":"g1","topic":"orders","partition":0,"offset":1}`), http.StatusOK)

	const (
		js   = "application/json"
		none = ""
	)
	big := `{"name":"big","partitions":1,"config":{"x":"` + strings.Repeat("a", limit) + `"}}`
	bigProduce := `{"topic":"orders","value":"` + strings.Repeat("a", limit) + `"}`
	long := strings.Repeat("a", 250)
	cases := []struct {
		name, method, path, ct, body string
		status                       int
		code, msg                    string
	}{
		// Bodies.
		{"malformed JSON", "POST", "/api/v1/topics", js, `{"name":`, 400, "bad_request", "malformed JSON"},
		{"syntax error", "POST", "/api/v1/topics", js, `{"name" "x"}`, 400, "bad_request", "malformed JSON"},
		{"trailing garbage", "POST", "/api/v1/topics", js, `{"name":"x","partitions":1} xyz`, 400, "bad_request", "unexpected data"},
		{"two objects", "POST", "/api/v1/topics", js, `{"name":"x","partitions":1}{}`, 400, "bad_request", "unexpected data"},
		{"empty body", "POST", "/api/v1/topics", js, ``, 400, "bad_request", "empty"},
		{"array body", "POST", "/api/v1/topics", js, `[]`, 400, "bad_request", "JSON object"},
		{"string body", "POST", "/api/v1/produce", js, `"x"`, 400, "bad_request", "JSON object"},
		{"oversized body", "POST", "/api/v1/topics", js, big, 413, "payload_too_large", "65536 bytes"},
		{"oversized produce", "POST", "/api/v1/produce", js, bigProduce, 413, "payload_too_large", "larger than"},
		{"oversized trailing space", "POST", "/api/v1/consumer-groups", js, `{"group_id":"x"}` + strings.Repeat(" ", limit), 413, "payload_too_large", "larger than"},
		{"missing content type", "POST", "/api/v1/topics", none, `{"name":"x","partitions":1}`, 415, "unsupported_media_type", "Content-Type"},
		{"text content type", "POST", "/api/v1/topics", "text/plain", `{"name":"x","partitions":1}`, 415, "unsupported_media_type", "text/plain"},
		{"form content type", "POST", "/api/v1/produce", "application/x-www-form-urlencoded", `topic=orders`, 415, "unsupported_media_type", "application/json"},
		{"bad content type", "POST", "/api/v1/produce/batch", "application/", `{}`, 415, "unsupported_media_type", "application/json"},
		{"sql content type", "POST", "/api/v1/sql", none, `{"query":"SELECT 1"}`, 415, "unsupported_media_type", "application/json"},
		{"commit content type", "POST", "/api/v1/consumer-groups/commit", "text/json", `{}`, 415, "unsupported_media_type", "text/json"},

		// Topics.
		{"partitions as string", "POST", "/api/v1/topics", js, `{"name":"x","partitions":"4"}`, 400, "bad_request", "partitions must be an integer in range, got string"},
		{"partitions fractional", "POST", "/api/v1/topics", js, `{"name":"x","partitions":1.5}`, 400, "bad_request", "partitions"},
		{"partitions overflow", "POST", "/api/v1/topics", js, `{"name":"x","partitions":10000000000}`, 400, "bad_request", "partitions"},
		{"name as number", "POST", "/api/v1/topics", js, `{"name":5,"partitions":1}`, 400, "bad_request", "name must be a string"},
		{"config not strings", "POST", "/api/v1/topics", js, `{"name":"x","partitions":1,"config":{"retention.ms":5}}`, 400, "bad_request", "config must be an object whose values are strings"},
		{"missing name", "POST", "/api/v1/topics", js, `{"partitions":1}`, 400, "bad_request", "name is required"},
		{"missing partitions", "POST", "/api/v1/topics", js, `{"name":"x"}`, 400, "bad_request", "partitions is required"},
		{"zero partitions", "POST", "/api/v1/topics", js, `{"name":"x","partitions":0}`, 400, "bad_request", "partition"},
		{"negative partitions", "POST", "/api/v1/topics", js, `{"name":"x","partitions":-3}`, 400, "bad_request", "partition"},
		{"too many partitions", "POST", "/api/v1/topics", js, `{"name":"x","partitions":100001}`, 400, "bad_request", "partition"},
		{"aliases disagree", "POST", "/api/v1/topics", js, `{"name":"x","partitions":1,"partition_count":2}`, 400, "bad_request", "disagree"},
		{"empty name", "POST", "/api/v1/topics", js, `{"name":"","partitions":1}`, 400, "bad_request", "empty"},
		{"name dot", "POST", "/api/v1/topics", js, `{"name":".","partitions":1}`, 400, "bad_request", "invalid topic"},
		{"name dotdot", "POST", "/api/v1/topics", js, `{"name":"..","partitions":1}`, 400, "bad_request", "invalid topic"},
		{"name slash", "POST", "/api/v1/topics", js, `{"name":"a/b","partitions":1}`, 400, "bad_request", "only ASCII letters"},
		{"name space", "POST", "/api/v1/topics", js, `{"name":"a b","partitions":1}`, 400, "bad_request", "invalid topic"},
		{"name unicode", "POST", "/api/v1/topics", js, `{"name":"café","partitions":1}`, 400, "bad_request", "invalid topic"},
		{"name 250 chars", "POST", "/api/v1/topics", js, `{"name":"` + long + `","partitions":1}`, 400, "bad_request", "at most 249"},
		{"unknown config", "POST", "/api/v1/topics", js, `{"name":"x","partitions":1,"config":{"retention.msx":"1"}}`, 400, "bad_request", "unknown topic config"},
		{"bad config value", "POST", "/api/v1/topics", js, `{"name":"x","partitions":1,"config":{"retention.ms":"soon"}}`, 400, "bad_request", "retention.ms"},
		{"topic exists", "POST", "/api/v1/topics", js, `{"name":"orders","partitions":4}`, 409, "conflict", `topic "orders" already exists`},
		{"get unknown topic", "GET", "/api/v1/topics/nope", none, ``, 404, "not_found", `topic "nope" does not exist`},
		{"get invalid topic", "GET", "/api/v1/topics/a%2Fb", none, ``, 404, "not_found", `"a/b"`},
		{"partitions unknown topic", "GET", "/api/v1/topics/nope/partitions", none, ``, 404, "not_found", "nope"},
		{"delete unknown topic", "DELETE", "/api/v1/topics/nope", none, ``, 404, "not_found", "nope"},

		// Produce.
		{"produce unknown topic", "POST", "/api/v1/produce", js, `{"topic":"nope","value":"v"}`, 404, "not_found", `topic "nope" does not exist`},
		{"produce missing topic", "POST", "/api/v1/produce", js, `{"value":"v"}`, 400, "bad_request", "topic is required"},
		{"produce topic number", "POST", "/api/v1/produce", js, `{"topic":1,"value":"v"}`, 400, "bad_request", "topic must be a string"},
		{"produce missing value", "POST", "/api/v1/produce", js, `{"topic":"orders","key":"k"}`, 400, "bad_request", "value is required"},
		{"produce value number", "POST", "/api/v1/produce", js, `{"topic":"orders","value":5}`, 400, "bad_request", "value must be a string"},
		{"produce value object", "POST", "/api/v1/produce", js, `{"topic":"orders","value":{"a":1}}`, 400, "bad_request", "value must be a string"},
		{"produce key number", "POST", "/api/v1/produce", js, `{"topic":"orders","key":7,"value":"v"}`, 400, "bad_request", "key must be a string"},
		{"produce negative partition", "POST", "/api/v1/produce", js, `{"topic":"orders","partition":-1,"value":"v"}`, 400, "bad_request", "negative"},
		{"produce partition out of range", "POST", "/api/v1/produce", js, `{"topic":"orders","partition":2,"value":"v"}`, 400, "bad_request", "partitions 0..1"},
		{"produce partition string", "POST", "/api/v1/produce", js, `{"topic":"orders","partition":"0","value":"v"}`, 400, "bad_request", "partition must be an integer"},
		{"produce headers not strings", "POST", "/api/v1/produce", js, `{"topic":"orders","value":"v","headers":{"a":1}}`, 400, "bad_request", "headers must be an object whose values are strings"},
		{"produce bad base64 value", "POST", "/api/v1/produce", js, `{"topic":"orders","value":"not base64!","encoding":"base64"}`, 400, "bad_request", "value is not valid base64"},
		{"produce bad base64 key", "POST", "/api/v1/produce", js, `{"topic":"orders","key":"%%%","value":"","encoding":"base64"}`, 400, "bad_request", "key is not valid base64"},
		{"produce unknown encoding", "POST", "/api/v1/produce", js, `{"topic":"orders","value":"00","encoding":"hex"}`, 400, "bad_request", `encoding "hex"`},
		{"produce unknown ack_mode", "POST", "/api/v1/produce", js, `{"topic":"orders","value":"v","ack_mode":"fast"}`, 400, "bad_request", "ack_mode"},
		{"produce ack_mode 3", "POST", "/api/v1/produce", js, `{"topic":"orders","value":"v","ack_mode":3}`, 400, "bad_request", "ack_mode 3"},
		{"produce ack_mode bool", "POST", "/api/v1/produce", js, `{"topic":"orders","value":"v","ack_mode":true}`, 400, "bad_request", "ack_mode"},
		{"produce too large for topic", "POST", "/api/v1/produce", js, `{"topic":"small","value":"` + strings.Repeat("x", 2000) + `"}`, 413, "payload_too_large", "too large"},

		// Batch: one bad record stores nothing.
		{"batch empty records", "POST", "/api/v1/produce/batch", js, `{"topic":"orders","records":[]}`, 400, "bad_request", "at least one record"},
		{"batch missing records", "POST", "/api/v1/produce/batch", js, `{"topic":"orders"}`, 400, "bad_request", "at least one record"},
		{"batch records object", "POST", "/api/v1/produce/batch", js, `{"topic":"orders","records":{}}`, 400, "bad_request", "records must be an array"},
		{"batch unknown topic", "POST", "/api/v1/produce/batch", js, `{"topic":"nope","records":[{"value":"v"}]}`, 404, "not_found", "nope"},
		{"batch missing value", "POST", "/api/v1/produce/batch", js, `{"topic":"orders","records":[{"value":"ok"},{"key":"k"}]}`, 400, "bad_request", "records[1].value is required"},
		{"batch record out of range", "POST", "/api/v1/produce/batch", js, `{"topic":"orders","records":[{"value":"ok","partition":0},{"value":"v","partition":9}]}`, 400, "bad_request", "partition 9 does not exist"},
		{"batch negative record partition", "POST", "/api/v1/produce/batch", js, `{"topic":"orders","records":[{"value":"ok"},{"value":"v","partition":-2}]}`, 400, "bad_request", "records[1].partition -2"},
		{"batch negative partition", "POST", "/api/v1/produce/batch", js, `{"topic":"orders","partition":-1,"records":[{"value":"ok"}]}`, 400, "bad_request", "negative"},
		{"batch top partition out of range", "POST", "/api/v1/produce/batch", js, `{"topic":"orders","partition":2,"records":[{"value":"ok"}]}`, 400, "bad_request", "partitions 0..1"},
		{"batch bad base64", "POST", "/api/v1/produce/batch", js, `{"topic":"orders","records":[{"value":"ok"},{"value":"!!","encoding":"base64"}]}`, 400, "bad_request", "records[1].value is not valid base64"},
		{"batch bad ack_mode", "POST", "/api/v1/produce/batch", js, `{"topic":"orders","records":[{"value":"ok"}],"ack_mode":"later"}`, 400, "bad_request", "ack_mode"},
		{"batch value type", "POST", "/api/v1/produce/batch", js, `{"topic":"orders","records":[{"value":1}]}`, 400, "bad_request", "records.value must be a string"},

		// Consume.
		{"consume missing topic", "GET", "/api/v1/consume?partition=0", none, ``, 400, "bad_request", "topic is required"},
		{"consume unknown topic", "GET", "/api/v1/consume?topic=nope", none, ``, 404, "not_found", "nope"},
		{"consume partition text", "GET", "/api/v1/consume?topic=orders&partition=abc", none, ``, 400, "bad_request", "partition must be an integer"},
		{"consume offset text", "GET", "/api/v1/consume?topic=orders&offset=first", none, ``, 400, "bad_request", "offset must be an integer"},
		{"consume offset float", "GET", "/api/v1/consume?topic=orders&offset=1.5", none, ``, 400, "bad_request", "offset must be an integer"},
		{"consume maxRecords text", "GET", "/api/v1/consume?topic=orders&maxRecords=ten", none, ``, 400, "bad_request", "maxRecords must be an integer"},
		{"consume limit text", "GET", "/api/v1/consume?topic=orders&limit=", none, ``, 400, "bad_request", "limit must be an integer"},
		{"consume wait text", "GET", "/api/v1/consume?topic=orders&wait_ms=soon", none, ``, 400, "bad_request", "wait_ms must be an integer"},
		{"consume negative maxRecords", "GET", "/api/v1/consume?topic=orders&maxRecords=-1", none, ``, 400, "bad_request", "negative"},
		{"consume negative limit", "GET", "/api/v1/consume?topic=orders&limit=-1", none, ``, 400, "bad_request", "negative"},
		{"consume negative wait", "GET", "/api/v1/consume?topic=orders&wait_ms=-5", none, ``, 400, "bad_request", "wait_ms"},
		{"consume negative partition", "GET", "/api/v1/consume?topic=orders&partition=-1", none, ``, 400, "bad_request", "partition -1"},
		{"consume partition out of range", "GET", "/api/v1/consume?topic=orders&partition=2", none, ``, 400, "bad_request", "partitions 0..1"},
		{"consume huge partition", "GET", "/api/v1/consume?topic=orders&partition=99999999999", none, ``, 400, "bad_request", "partition"},
		{"consume negative offset", "GET", "/api/v1/consume?topic=orders&offset=-1", none, ``, 400, "bad_request", "negative"},
		{"consume offset past end", "GET", "/api/v1/consume?topic=orders&partition=0&offset=7", none, ``, 400, "bad_request", "has offsets 0..1"},

		// Consumer groups.
		{"group missing id", "POST", "/api/v1/consumer-groups", js, `{}`, 400, "bad_request", "group_id is required"},
		{"group empty id", "POST", "/api/v1/consumer-groups", js, `{"group_id":""}`, 400, "bad_request", "empty"},
		{"group id number", "POST", "/api/v1/consumer-groups", js, `{"group_id":5}`, 400, "bad_request", "group_id must be a string"},
		{"group id too long", "POST", "/api/v1/consumer-groups", js, `{"group_id":"` + strings.Repeat("g", 256) + `"}`, 400, "bad_request", "at most 255"},
		{"group exists", "POST", "/api/v1/consumer-groups", js, `{"group_id":"g1"}`, 409, "conflict", `"g1" already exists`},
		{"get unknown group", "GET", "/api/v1/consumer-groups/nope", none, ``, 404, "not_found", `consumer group "nope" does not exist`},
		{"offsets unknown group", "GET", "/api/v1/consumer-groups/nope/offsets", none, ``, 404, "not_found", "nope"},
		{"delete unknown group", "DELETE", "/api/v1/consumer-groups/nope", none, ``, 404, "not_found", "nope"},
		{"commit missing group", "POST", "/api/v1/consumer-groups/commit", js, `{"topic":"orders","partition":0,"offset":1}`, 400, "bad_request", "group_id is required"},
		{"commit missing topic", "POST", "/api/v1/consumer-groups/commit", js, `{"group_id":"g2","partition":0,"offset":1}`, 400, "bad_request", "topic is required"},
		{"commit missing partition", "POST", "/api/v1/consumer-groups/commit", js, `{"group_id":"g2","topic":"orders","offset":1}`, 400, "bad_request", "partition is required"},
		{"commit missing offset", "POST", "/api/v1/consumer-groups/commit", js, `{"group_id":"g2","topic":"orders","partition":0}`, 400, "bad_request", "offset is required"},
		{"commit offset string", "POST", "/api/v1/consumer-groups/commit", js, `{"group_id":"g2","topic":"orders","partition":0,"offset":"1"}`, 400, "bad_request", "offset must be an integer"},
		{"commit negative offset", "POST", "/api/v1/consumer-groups/commit", js, `{"group_id":"g2","topic":"orders","partition":0,"offset":-1}`, 400, "bad_request", "negative"},
		{"commit negative partition", "POST", "/api/v1/consumer-groups/commit", js, `{"group_id":"g2","topic":"orders","partition":-1,"offset":1}`, 400, "bad_request", "negative"},
		{"commit partition out of range", "POST", "/api/v1/consumer-groups/commit", js, `{"group_id":"g2","topic":"orders","partition":5,"offset":1}`, 400, "bad_request", "partitions 0..1"},
		{"commit unknown topic", "POST", "/api/v1/consumer-groups/commit", js, `{"group_id":"g2","topic":"nope","partition":0,"offset":1}`, 404, "not_found", `topic "nope" does not exist`},
		{"commit empty group", "POST", "/api/v1/consumer-groups/commit", js, `{"group_id":"","topic":"orders","partition":0,"offset":1}`, 400, "bad_request", "empty"},

		// SQL without an engine (a build without cgo): the body is
		// checked before the 501.
		{"sql malformed", "POST", "/api/v1/sql", js, `{"query":`, 400, "bad_request", "malformed"},
		{"sql missing query", "POST", "/api/v1/sql", js, `{}`, 400, "bad_request", "query is required"},
		{"sql query number", "POST", "/api/v1/sql", js, `{"query":1}`, 400, "bad_request", "query must be a string"},
		{"sql timeout zero", "POST", "/api/v1/sql", js, `{"query":"SELECT 1","timeout_ms":0}`, 400, "bad_request", "timeout_ms must be in 1..30000"},
		{"sql timeout above the limit", "POST", "/api/v1/sql", js, `{"query":"SELECT 1","timeout_ms":30001}`, 400, "bad_request", "SQL_TIMEOUT_MS"},
		{"sql max_rows negative", "POST", "/api/v1/sql", js, `{"query":"SELECT 1","max_rows":-1}`, 400, "bad_request", "max_rows must be in 1..10000"},
		{"sql max_rows above the limit", "POST", "/api/v1/sql", js, `{"query":"SELECT 1","max_rows":10001}`, 400, "bad_request", "SQL_MAX_ROWS"},
		{"sql", "POST", "/api/v1/sql", "application/json; charset=utf-8", `{"query":"SELECT * FROM orders LIMIT 10"}`, 501, "not_implemented", "SQL is not available in this build"},

		// Routing.
		{"unknown path", "GET", "/api/v2/topics", none, ``, 404, "not_found", "no such endpoint"},
		{"unknown root", "GET", "/nothing", none, ``, 404, "not_found", "/nothing"},
		{"unknown subpath", "GET", "/api/v1/topics/orders/nothing", none, ``, 404, "not_found", "no such endpoint"},
	}
	// A topic with a small max.message.bytes, for the too-large case.
	e.must(e.post("/api/v1/topics", `{"name":"small","partitions":1,"config":{"max.message.bytes":"1000"}}`), http.StatusCreated)

	before := e.snapshot()
	for _, c := range cases {
		r := e.do(c.method, c.path, c.ct, c.body)
		t.Run(c.name, func(t *testing.T) {
			checkError(t, r, c.status, c.code, c.msg)
		})
		if after := e.snapshot(); after != before {
			t.Fatalf("%s changed stored data:\nbefore:\n%s\nafter:\n%s", c.name, before, after)
		}
	}
}

func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, c := range []struct{ method, path, allow string }{
		{"PUT", "/api/v1/topics", "GET, HEAD, POST"},
		{"POST", "/api/v1/topics/x", "DELETE, GET, HEAD"},
		{"GET", "/api/v1/produce", "POST"},
		{"DELETE", "/api/v1/consume", "GET, HEAD"},
		{"GET", "/api/v1/sql", "POST"},
		{"POST", "/health", "GET, HEAD"},
	} {
		r := e.do(c.method, c.path, "application/json", "{}")
		checkError(t, r, http.StatusMethodNotAllowed, "method_not_allowed", "not allowed")
		if got := r.header.Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
		}
	}
}

func TestOperationalEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.must(e.get("/health"), http.StatusOK)
	if string(r.body) != "{\"status\":\"ok\"}\n" || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("health %s %v", r.body, r.header)
	}
	r = e.must(e.get("/ready"), http.StatusOK)
	if string(r.body) != "{\"status\":\"ready\"}\n" {
		t.Fatalf("ready %s", r.body)
	}

	e.createTopic("m", 1)
	e.get("/api/v1/topics/m")
	e.get("/api/v1/topics/nope")
	e.get("/nowhere")
	r = e.must(e.get("/metrics"), http.StatusOK)
	for _, want := range []string{
		`streamhouse_http_requests_total{code="200",route="GET /health"} 1`,
		`streamhouse_http_requests_total{code="201",route="POST /api/v1/topics"} 1`,
		`streamhouse_http_requests_total{code="200",route="GET /api/v1/topics/{name}"} 1`,
		`streamhouse_http_requests_total{code="404",route="GET /api/v1/topics/{name}"} 1`,
		`streamhouse_http_requests_total{code="404",route="unmatched"} 1`,
		`streamhouse_http_request_duration_seconds_count{route="GET /api/v1/topics/{name}"} 2`,
	} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestNotReady(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withReady(func(context.Context) error { return errors.New("metadata store: connection refused") }))
	r := e.get("/ready")
	checkError(t, r, http.StatusServiceUnavailable, "not_ready", "connection refused")
	e.must(e.get("/health"), http.StatusOK)
}

// TestEveryRouteAnswersJSON checks no route answers a bad request with a
// 500 or a non-JSON body.
func TestEveryRouteAnswersJSON(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, path := range []string{"/api/v1/topics", "/api/v1/topics/x", "/api/v1/topics/x/partitions", "/api/v1/produce",
		"/api/v1/produce/batch", "/api/v1/consume", "/api/v1/consumer-groups", "/api/v1/consumer-groups/x",
		"/api/v1/consumer-groups/x/offsets", "/api/v1/consumer-groups/commit", "/api/v1/sql"} {
		for _, method := range []string{"GET", "POST", "DELETE", "PATCH"} {
			for _, body := range []string{"", "{", "null", `{"topic":null,"name":null,"value":null,"records":null}`} {
				r := e.do(method, path, "application/json", body)
				if r.status >= 500 && r.status != http.StatusNotImplemented {
					t.Errorf("%s %s %q: status %d %s", method, path, body, r.status, r.body)
				}
				if r.status != http.StatusNoContent && r.header.Get("Content-Type") != "application/json" {
					t.Errorf("%s %s %q: Content-Type %q", method, path, body, r.header.Get("Content-Type"))
				}
			}
		}
	}
	// A null value is a tombstone, accepted once the topic exists.
	e.createTopic("x", 1)
	if r := e.post("/api/v1/produce", `{"topic":"x","value":null}`); r.status != http.StatusOK {
		t.Fatalf("tombstone: %d %s", r.status, r.body)
	}
}

// The profiler is served only when enabled.
func TestPprofOnlyWhenEnabled(t *testing.T) {
	t.Parallel()
	off := newEnv(t)
	if r := off.get("/debug/pprof/"); r.status != http.StatusNotFound {
		t.Fatalf("pprof without PPROF_ENABLED: %d", r.status)
	}
	on := newEnv(t, func(c *rest.Config) { c.Pprof = true })
	if r := on.get("/debug/pprof/"); r.status != http.StatusOK || !strings.Contains(string(r.body), "goroutine") {
		t.Fatalf("pprof enabled: %d", r.status)
	}
}
