package rest_test

import (
	"net/http"
	"testing"
)

func TestConsumerGroups(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createTopic("g", 2)
	for range 5 {
		e.produce(`{"topic":"g","partition":0,"value":"v"}`)
	}
	e.produce(`{"topic":"g","partition":1,"value":"v"}`)

	if r := e.must(e.get("/api/v1/consumer-groups"), http.StatusOK); string(r.body) != "[]\n" {
		t.Fatalf("empty list %q", r.body)
	}

	r := e.must(e.post("/api/v1/consumer-groups", `{"group_id":"billing"}`), http.StatusCreated)
	if loc := r.header.Get("Location"); loc != "/api/v1/consumer-groups/billing" {
		t.Fatalf("Location %q", loc)
	}
	m := object(t, r.body, "group_id", "state", "members", "offsets", "total_lag")
	if m["group_id"] != "billing" || m["state"] != "Empty" || num(t, m, "total_lag") != 0 {
		t.Fatalf("created %v", m)
	}
	checkError(t, e.post("/api/v1/consumer-groups", `{"group_id":"billing"}`), http.StatusConflict, "conflict", "billing")

	// A created group is listed and described before any commit.
	list := array(t, e.must(e.get("/api/v1/consumer-groups"), http.StatusOK).body)
	if len(list) != 1 || list[0]["group_id"] != "billing" {
		t.Fatalf("list %v", list)
	}
	e.must(e.get("/api/v1/consumer-groups/billing"), http.StatusOK)

	r = e.must(e.post("/api/v1/consumer-groups/commit", `{"group_id":"billing","topic":"g","partition":0,"offset":2,"metadata":"m"}`), http.StatusOK)
	if string(r.body) != "{\"success\":true}\n" {
		t.Fatalf("commit answer %s", r.body)
	}
	e.must(e.post("/api/v1/consumer-groups/commit", `{"group_id":"billing","topic":"g","partition":1,"offset":1}`), http.StatusOK)
	// Committing for an unknown group creates it, as Kafka does.
	e.must(e.post("/api/v1/consumer-groups/commit", `{"group_id":"audit","topic":"g","partition":0,"offset":5}`), http.StatusOK)

	r = e.must(e.get("/api/v1/consumer-groups/billing"), http.StatusOK)
	m = object(t, r.body, "group_id", "state", "members", "offsets", "total_lag")
	if members, ok := m["members"].([]any); !ok || len(members) != 0 {
		t.Fatalf("members %#v, want []", m["members"])
	}
	if num(t, m, "total_lag") != 3 {
		t.Fatalf("total_lag %v, want 3", m["total_lag"])
	}
	offs := m["offsets"].([]any)
	if len(offs) != 2 {
		t.Fatalf("offsets %v", offs)
	}
	o0 := offs[0].(map[string]any)
	checkKeys(t, o0, "topic", "partition", "committed_offset", "high_watermark", "lag")
	if o0["topic"] != "g" || num(t, o0, "partition") != 0 || num(t, o0, "committed_offset") != 2 ||
		num(t, o0, "high_watermark") != 5 || num(t, o0, "lag") != 3 {
		t.Fatalf("offsets[0] %v", o0)
	}
	if o1 := offs[1].(map[string]any); num(t, o1, "partition") != 1 || num(t, o1, "lag") != 0 {
		t.Fatalf("offsets[1] %v", o1)
	}

	list = array(t, e.must(e.get("/api/v1/consumer-groups"), http.StatusOK).body)
	if len(list) != 2 || list[0]["group_id"] != "audit" || list[1]["group_id"] != "billing" {
		t.Fatalf("list %v", list)
	}
	checkKeys(t, list[1], "group_id", "total_lag", "partitions")
	if num(t, list[0], "total_lag") != 0 || num(t, list[1], "total_lag") != 3 {
		t.Fatalf("list lags %v", list)
	}

	committed := array(t, e.must(e.get("/api/v1/consumer-groups/billing/offsets"), http.StatusOK).body)
	if len(committed) != 2 {
		t.Fatalf("offsets %v", committed)
	}
	checkKeys(t, committed[0], "topic", "partition", "offset", "metadata")
	if committed[0]["topic"] != "g" || num(t, committed[0], "offset") != 2 || committed[0]["metadata"] != "m" ||
		num(t, committed[1], "partition") != 1 || committed[1]["metadata"] != "" {
		t.Fatalf("offsets %v", committed)
	}

	r = e.must(e.do(http.MethodDelete, "/api/v1/consumer-groups/billing", "", ""), http.StatusNoContent)
	if len(r.body) != 0 {
		t.Fatalf("delete body %q", r.body)
	}
	checkError(t, e.get("/api/v1/consumer-groups/billing"), http.StatusNotFound, "not_found", `consumer group "billing" does not exist`)
	checkError(t, e.get("/api/v1/consumer-groups/billing/offsets"), http.StatusNotFound, "not_found", "billing")
	checkError(t, e.do(http.MethodDelete, "/api/v1/consumer-groups/billing", "", ""), http.StatusNotFound, "not_found", "billing")
}
