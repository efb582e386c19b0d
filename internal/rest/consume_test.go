package rest_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestConsumePaging(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createTopic("paged", 2)
	var recs []string
	for i := range 25 {
		recs = append(recs, fmt.Sprintf(`{"value":"m%d"}`, i))
	}
	e.must(e.post("/api/v1/produce/batch", `{"topic":"paged","partition":1,"records":[`+strings.Join(recs, ",")+`]}`), http.StatusOK)

	// Defaults: partition 0, offset 0.
	if c := e.consume("topic=paged"); len(c.Records) != 0 || c.NextOffset != 0 || c.HighWatermark != 0 {
		t.Fatalf("partition 0: %+v", c)
	}
	for _, q := range []string{"maxRecords=10", "max_records=10", "limit=10"} {
		c := e.consume("topic=paged&partition=1&offset=5&" + q)
		if len(c.Records) != 10 || c.NextOffset != 15 || c.HighWatermark != 25 {
			t.Fatalf("%s: %d records, next %d, hw %d", q, len(c.Records), c.NextOffset, c.HighWatermark)
		}
		for i, r := range c.Records {
			if r.Offset != int64(5+i) || *r.Value != fmt.Sprintf("m%d", 5+i) || r.Partition != 1 {
				t.Fatalf("%s: record %d = %+v", q, i, r)
			}
		}
	}
	// maxRecords 0 or absent is the default (100), as gRPC's max_records 0.
	var more []string
	for i := range 150 {
		more = append(more, fmt.Sprintf(`{"value":"n%d"}`, i))
	}
	e.must(e.post("/api/v1/produce/batch", `{"topic":"paged","partition":0,"records":[`+strings.Join(more, ",")+`]}`), http.StatusOK)
	for _, q := range []string{"", "&maxRecords=0"} {
		if c := e.consume("topic=paged&partition=0" + q); len(c.Records) != 100 || c.NextOffset != 100 {
			t.Fatalf("maxRecords %q: %d records, next %d; want the default 100", q, len(c.Records), c.NextOffset)
		}
	}
	// Beyond the cap is capped, not refused.
	if c := e.consume("topic=paged&partition=1&maxRecords=1000000"); len(c.Records) != 25 || c.NextOffset != 25 {
		t.Fatalf("capped: %d records, next %d", len(c.Records), c.NextOffset)
	}
	// At the high watermark: nothing yet, same offset.
	if c := e.consume("topic=paged&partition=1&offset=25"); len(c.Records) != 0 || c.NextOffset != 25 {
		t.Fatalf("at the end: %+v", c)
	}
}

func TestConsumeLongPoll(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createTopic("poll", 1)
	type answer struct {
		c   consumed
		err error
	}
	done := make(chan answer, 1)
	go func() {
		var a answer
		res, err := e.srv.Client().Get(e.srv.URL + "/api/v1/consume?topic=poll&partition=0&offset=0&wait_ms=20000")
		if err == nil {
			a.err = json.NewDecoder(res.Body).Decode(&a.c)
			res.Body.Close()
		}
		if a.err == nil {
			a.err = err
		}
		done <- a
	}()
	// Whether the poll is waiting yet or not, it must return this record.
	e.produce(`{"topic":"poll","value":"wake"}`)
	select {
	case a := <-done:
		if a.err != nil || len(a.c.Records) != 1 || *a.c.Records[0].Value != "wake" {
			t.Fatalf("long poll got %+v, %v", a.c, a.err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("long poll did not return after a produce")
	}
}
