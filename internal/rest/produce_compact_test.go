package rest_test

import (
	"net/http"
	"testing"
)

// A record without a key on a compacted topic is refused (400) and not
// stored; with a key it goes in.
func TestProduceKeylessOnCompactedTopic(t *testing.T) {
	e := newEnv(t)
	e.must(e.post("/api/v1/topics", `{"name":"kc","partitions":1,"config":{"cleanup.policy":"compact"}}`), http.StatusCreated)
	checkError(t, e.post("/api/v1/produce", `{"topic":"kc","value":"no key","partition":0}`), http.StatusBadRequest, "bad_request", "key")
	if got := e.consume("topic=kc&partition=0&offset=0"); len(got.Records) != 0 || got.HighWatermark != 0 {
		t.Fatalf("after a refused produce: %+v", got)
	}
	if got := e.produce(`{"topic":"kc","key":"k","value":"v","partition":0}`); got.Offset != 0 {
		t.Fatalf("keyed produce at %d, want 0", got.Offset)
	}
}
