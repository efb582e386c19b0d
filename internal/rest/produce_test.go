package rest_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"testing"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/broker"
)

// TestReadmeQuickStart runs the README's curl examples.
func TestReadmeQuickStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.must(e.post("/api/v1/topics", `{"name": "events", "partitions": 4}`), http.StatusCreated)

	r := e.must(e.post("/api/v1/produce", `{"topic": "events", "key": "user-1", "value": "{\"event\": \"signup\"}"}`), http.StatusOK)
	m := object(t, r.body, "offset", "partition", "timestamp")
	want := broker.KeyPartition([]byte("user-1"), 4)
	if p := num(t, m, "partition"); p != int64(want) {
		t.Fatalf("partition %d, want murmur2 partition %d", p, want)
	}
	if off := num(t, m, "offset"); off != 0 {
		t.Fatalf("offset %d, want 0", off)
	}

	// The README consumes partition 0; the record is where produce said.
	for p := int32(0); p < 4; p++ {
		r := e.must(e.get(fmt.Sprintf("/api/v1/consume?topic=events&partition=%d&offset=0", p)), http.StatusOK)
		body := object(t, r.body, "records", "nextOffset", "highWatermark")
		recs := body["records"].([]any)
		if p != want {
			if len(recs) != 0 || num(t, body, "nextOffset") != 0 || num(t, body, "highWatermark") != 0 {
				t.Fatalf("partition %d: %s, want no records", p, r.body)
			}
			continue
		}
		if len(recs) != 1 || num(t, body, "nextOffset") != 1 || num(t, body, "highWatermark") != 1 {
			t.Fatalf("partition %d: %s, want one record", p, r.body)
		}
		rec := recs[0].(map[string]any)
		checkKeys(t, rec, "partition", "offset", "key", "value", "timestamp", "headers")
		if num(t, rec, "partition") != int64(p) || num(t, rec, "offset") != 0 || rec["key"] != "user-1" ||
			rec["value"] != `{"event": "signup"}` || num(t, rec, "timestamp") != num(t, m, "timestamp") {
			t.Fatalf("record %v", rec)
		}
		if h, ok := rec["headers"].(map[string]any); !ok || len(h) != 0 {
			t.Fatalf("headers %#v, want {}", rec["headers"])
		}
	}
}

func TestProduceKeyPartitioning(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createTopic("keyed", 7)
	for i := range 20 {
		key := fmt.Sprintf("customer-%d", i)
		got := e.produce(fmt.Sprintf(`{"topic":"keyed","key":%q,"value":"v"}`, key))
		if want := broker.KeyPartition([]byte(key), 7); got.Partition != want {
			t.Fatalf("key %s: partition %d, want %d", key, got.Partition, want)
		}
	}
	// A base64 key hashes its bytes.
	raw := []byte{0xde, 0xad, 0xbe, 0xef}
	got := e.produce(fmt.Sprintf(`{"topic":"keyed","key":%q,"value":"","encoding":"base64"}`, base64.StdEncoding.EncodeToString(raw)))
	if want := broker.KeyPartition(raw, 7); got.Partition != want {
		t.Fatalf("binary key: partition %d, want %d", got.Partition, want)
	}
	// An explicit partition wins over the key.
	if got := e.produce(`{"topic":"keyed","key":"customer-1","value":"v","partition":6}`); got.Partition != 6 {
		t.Fatalf("explicit partition: %d, want 6", got.Partition)
	}
}

func TestProduceBinaryRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createTopic("bin", 1)
	key := []byte{0x00, 0xff, 0xfe}
	value := []byte{0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a, 0x00}
	e.produce(fmt.Sprintf(`{"topic":"bin","key":%q,"value":%q,"encoding":"base64"}`,
		base64.StdEncoding.EncodeToString(key), base64.StdEncoding.EncodeToString(value)))
	// base64 of valid UTF-8 comes back as text.
	e.produce(fmt.Sprintf(`{"topic":"bin","value":%q,"encoding":"base64"}`, base64.StdEncoding.EncodeToString([]byte("héllo"))))
	// A null value is a tombstone; an empty one is not.
	e.produce(`{"topic":"bin","key":"k","value":null}`)
	e.produce(`{"topic":"bin","key":"k","value":"","headers":{"trace":"abc","b":""}}`)

	c := e.consume("topic=bin&partition=0&offset=0")
	if len(c.Records) != 4 || c.NextOffset != 4 {
		t.Fatalf("consumed %+v", c)
	}
	r0 := c.Records[0]
	if r0.Encoding != "base64" || *r0.Key != base64.StdEncoding.EncodeToString(key) || *r0.Value != base64.StdEncoding.EncodeToString(value) {
		t.Fatalf("binary record %+v", r0)
	}
	if r1 := c.Records[1]; r1.Encoding != "" || r1.Key != nil || *r1.Value != "héllo" {
		t.Fatalf("text record %+v", r1)
	}
	if r2 := c.Records[2]; r2.Value != nil || *r2.Key != "k" {
		t.Fatalf("tombstone %+v", r2)
	}
	if r3 := c.Records[3]; r3.Value == nil || *r3.Value != "" || len(r3.Headers) != 2 || r3.Headers["trace"] != "abc" {
		t.Fatalf("empty value with headers %+v", r3)
	}
}

// TestConsumeNonUTF8 produces invalid UTF-8 through the broker (as a Kafka
// client would) and reads it back over REST.
func TestConsumeNonUTF8(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createTopic("raw", 1)
	bad := []byte{'a', 0xc3, 0x28}
	_, err := e.b.ProduceRecords(context.Background(), "raw", 0, []broker.Record{
		{Key: []byte("text-key"), Value: bad},
		{Value: []byte("fine"), Headers: []batch.RecordHeader{{Key: "h", Value: bad}, {Key: "n"}}},
	}, broker.AckDurable, batch.DefaultBuildOptions())
	if err != nil {
		t.Fatal(err)
	}
	r := e.must(e.get("/api/v1/consume?topic=raw&partition=0&offset=0"), http.StatusOK)
	body := object(t, r.body, "records", "nextOffset", "highWatermark")
	recs := body["records"].([]any)
	r0 := recs[0].(map[string]any)
	checkKeys(t, r0, "partition", "offset", "key", "value", "timestamp", "headers", "encoding")
	if r0["encoding"] != "base64" || r0["key"] != base64.StdEncoding.EncodeToString([]byte("text-key")) ||
		r0["value"] != base64.StdEncoding.EncodeToString(bad) {
		t.Fatalf("record %v", r0)
	}
	r1 := recs[1].(map[string]any)
	checkKeys(t, r1, "partition", "offset", "key", "value", "timestamp", "headers", "headers_encoding")
	h := r1["headers"].(map[string]any)
	if r1["key"] != nil || r1["value"] != "fine" || r1["headers_encoding"] != "base64" ||
		h["h"] != base64.StdEncoding.EncodeToString(bad) || h["n"] != "" {
		t.Fatalf("record %v", r1)
	}
}

func TestProduceAckModes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createTopic("acks", 1)
	modes := []string{`"none"`, `"buffered"`, `"durable"`, `2`, `0`, `1`, `"ACK_DURABLE"`, `"Buffered"`, `null`}
	for i, mode := range modes {
		got := e.produce(fmt.Sprintf(`{"topic":"acks","value":"v%d","ack_mode":%s}`, i, mode))
		if got.Offset != int64(i) || got.Partition != 0 {
			t.Fatalf("ack_mode %s: %+v, want offset %d", mode, got, i)
		}
	}
	// Durable (the default) means committed when the answer arrives.
	got := e.produce(`{"topic":"acks","value":"last"}`)
	if _, hw, err := e.b.Offsets(context.Background(), "acks", 0); err != nil || hw != got.Offset+1 {
		t.Fatalf("high watermark %d (%v) right after a durable produce at %d", hw, err, got.Offset)
	}
	c := e.consume("topic=acks&partition=0&offset=0&maxRecords=100")
	if len(c.Records) != len(modes)+1 {
		t.Fatalf("consumed %d records, want %d", len(c.Records), len(modes)+1)
	}
	for i := range modes {
		if *c.Records[i].Value != fmt.Sprintf("v%d", i) {
			t.Fatalf("record %d = %q", i, *c.Records[i].Value)
		}
	}
}

func TestProduceBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createTopic("b", 3)
	// A key that hashes to partition 2, so each partition gets its own.
	key := ""
	for i := 0; key == ""; i++ {
		if k := fmt.Sprintf("k%d", i); broker.KeyPartition([]byte(k), 3) == 2 {
			key = k
		}
	}
	r := e.must(e.post("/api/v1/produce/batch", fmt.Sprintf(`{"topic":"b","records":[
		{"value":"p1-a","partition":1},
		{"key":%[1]q,"value":"keyed"},
		{"value":"p0","partition":0},
		{"value":"cDEtYg==","partition":1,"encoding":"base64"},
		{"value":null,"key":%[1]q}
	]}`, key)), http.StatusOK)
	m := object(t, r.body, "count", "offsets")
	if num(t, m, "count") != 5 {
		t.Fatalf("count %v", m["count"])
	}
	offs := m["offsets"].([]any)
	want := []struct{ p, o int64 }{{1, 0}, {2, 0}, {0, 0}, {1, 1}, {2, 1}}
	if len(offs) != len(want) {
		t.Fatalf("offsets %v", offs)
	}
	for i, o := range offs {
		om := o.(map[string]any)
		checkKeys(t, om, "partition", "offset")
		if p, off := num(t, om, "partition"), num(t, om, "offset"); p != want[i].p || off != want[i].o {
			t.Fatalf("offsets[%d] = %d/%d, want %d/%d", i, p, off, want[i].p, want[i].o)
		}
	}
	c := e.consume("topic=b&partition=1&offset=0")
	if len(c.Records) != 2 || *c.Records[0].Value != "p1-a" || *c.Records[1].Value != "p1-b" {
		t.Fatalf("partition 1: %+v", c.Records)
	}

	// A top-level partition applies to every record without one.
	r = e.must(e.post("/api/v1/produce/batch", `{"topic":"b","partition":2,"ack_mode":"buffered","records":[{"value":"x"},{"value":"y","key":"other"}]}`), http.StatusOK)
	res := decodeInto[struct {
		Count   int `json:"count"`
		Offsets []struct {
			Partition int32 `json:"partition"`
			Offset    int64 `json:"offset"`
		} `json:"offsets"`
	}](t, r.body)
	if res.Count != 2 || res.Offsets[0].Partition != 2 || res.Offsets[1].Partition != 2 || res.Offsets[1].Offset != res.Offsets[0].Offset+1 {
		t.Fatalf("top-level partition: %+v", res)
	}
}
