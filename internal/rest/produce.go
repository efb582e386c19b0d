package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/authz"
	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/broker"
)

// parseAckMode reads ack_mode: absent or null is durable (a 2xx means the
// record is in the object store); "none", "buffered", "durable" (any case,
// also the gRPC names "ACK_NONE"...) or the original's integers 2, 0, 1.
func parseAckMode(raw json.RawMessage) (broker.AckMode, error) {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return broker.AckDurable, nil
	}
	var name string
	if err := json.Unmarshal(raw, &name); err == nil {
		switch strings.TrimPrefix(strings.ToLower(name), "ack_") {
		case "none":
			return broker.AckNone, nil
		case "buffered":
			return broker.AckBuffered, nil
		case "durable":
			return broker.AckDurable, nil
		}
	} else {
		var n int
		if err := json.Unmarshal(raw, &n); err == nil {
			switch n {
			case 2:
				return broker.AckNone, nil
			case 0:
				return broker.AckBuffered, nil
			case 1:
				return broker.AckDurable, nil
			}
		}
	}
	return 0, badRequest(`ack_mode %s is not supported: use "none", "buffered" or "durable" (or 2, 0, 1)`, raw)
}

// recordJSON is one record of a produce request. Key and value are text, or
// base64 with encoding "base64". An explicit null value is a tombstone; an
// absent one is an error.
type recordJSON struct {
	Key       nullableString    `json:"key"`
	Value     nullableString    `json:"value"`
	Headers   map[string]string `json:"headers"`
	Encoding  string            `json:"encoding"`
	Partition *int32            `json:"partition"`
}

// toRecord validates rec (named what in errors) and builds a broker record.
func toRecord(what string, rec recordJSON, defEncoding string) (broker.Record, error) {
	enc := rec.Encoding
	if enc == "" {
		enc = defEncoding
	}
	b64, err := parseEncoding(enc)
	if err != nil {
		return broker.Record{}, err
	}
	if !rec.Value.set {
		return broker.Record{}, badRequest("%svalue is required (null for a tombstone)", what)
	}
	if rec.Partition != nil && *rec.Partition < 0 {
		return broker.Record{}, badRequest("%spartition %d is negative; leave it out to let the key choose", what, *rec.Partition)
	}
	key, err := bytesOf(what+"key", rec.Key, b64)
	if err != nil {
		return broker.Record{}, err
	}
	value, err := bytesOf(what+"value", rec.Value, b64)
	if err != nil {
		return broker.Record{}, err
	}
	out := broker.Record{Key: key, Value: value}
	if len(rec.Headers) > 0 {
		names := make([]string, 0, len(rec.Headers))
		for k := range rec.Headers {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			out.Headers = append(out.Headers, batch.RecordHeader{Key: k, Value: []byte(rec.Headers[k])})
		}
	}
	return out, nil
}

// produceRequest is POST /api/v1/produce.
type produceRequest struct {
	Topic     *string           `json:"topic"`
	Key       nullableString    `json:"key"`
	Value     nullableString    `json:"value"`
	Headers   map[string]string `json:"headers"`
	Encoding  string            `json:"encoding"`
	Partition *int32            `json:"partition"`
	AckMode   json.RawMessage   `json:"ack_mode"`
}

// produceResponse says where the record went; timestamp is in ms.
type produceResponse struct {
	Offset    int64 `json:"offset"`
	Partition int32 `json:"partition"`
	Timestamp int64 `json:"timestamp"`
}

func requireTopic(topic *string) (string, error) {
	if topic == nil || *topic == "" {
		return "", badRequest("topic is required")
	}
	return *topic, nil
}

// produceErr names the topic in a 404.
func produceErr(topic string, err error) error {
	if errors.Is(err, broker.ErrUnknownTopic) {
		return notFound("topic %q does not exist", topic)
	}
	return err
}

func (s *server) produce(w http.ResponseWriter, r *http.Request) error {
	var req produceRequest
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	topic, err := requireTopic(req.Topic)
	if err != nil {
		return err
	}
	if err := s.authorize(r, authz.Need(acl.OpWrite, acl.Topic(topic))); err != nil {
		return err
	}
	mode, err := parseAckMode(req.AckMode)
	if err != nil {
		return err
	}
	rec, err := toRecord("", recordJSON{Key: req.Key, Value: req.Value, Headers: req.Headers,
		Encoding: req.Encoding, Partition: req.Partition}, "")
	if err != nil {
		return err
	}
	partition := int32(-1)
	if req.Partition != nil {
		partition = *req.Partition
	}
	offs, err := s.b.ProduceRecords(r.Context(), topic, partition, []broker.Record{rec}, mode, batch.DefaultBuildOptions())
	if err != nil {
		return produceErr(topic, err)
	}
	writeJSON(w, http.StatusOK, produceResponse{Offset: offs[0].Offset, Partition: offs[0].Partition, Timestamp: offs[0].Timestamp})
	return nil
}

// batchRequest is POST /api/v1/produce/batch. A record's own partition
// and encoding override the request's.
type batchRequest struct {
	Topic     *string         `json:"topic"`
	Partition *int32          `json:"partition"`
	Encoding  string          `json:"encoding"`
	Records   []recordJSON    `json:"records"`
	AckMode   json.RawMessage `json:"ack_mode"`
}

type offsetJSON struct {
	Partition int32 `json:"partition"`
	Offset    int64 `json:"offset"`
}

// batchResponse lists each record's place, in request order.
type batchResponse struct {
	Count   int          `json:"count"`
	Offsets []offsetJSON `json:"offsets"`
}

// produceBatch validates every record before storing any. Records with an
// explicit partition are appended per partition, the rest spread by key;
// each partition's records are all-or-nothing, but a failure after the
// first partition leaves the earlier ones stored (the error says so).
func (s *server) produceBatch(w http.ResponseWriter, r *http.Request) error {
	var req batchRequest
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	topic, err := requireTopic(req.Topic)
	if err != nil {
		return err
	}
	if err := s.authorize(r, authz.Need(acl.OpWrite, acl.Topic(topic))); err != nil {
		return err
	}
	mode, err := parseAckMode(req.AckMode)
	if err != nil {
		return err
	}
	if len(req.Records) == 0 {
		return badRequest("records must hold at least one record")
	}
	if req.Partition != nil && *req.Partition < 0 {
		return badRequest("partition %d is negative; leave it out to let the keys choose", *req.Partition)
	}
	recs := make([]broker.Record, len(req.Records))
	parts := make([]int32, len(req.Records)) // -1: by key
	maxPart := int32(-1)
	for i, rj := range req.Records {
		if recs[i], err = toRecord(fmt.Sprintf("records[%d].", i), rj, req.Encoding); err != nil {
			return err
		}
		parts[i] = -1
		if req.Partition != nil {
			parts[i] = *req.Partition
		}
		if rj.Partition != nil {
			parts[i] = *rj.Partition
		}
		maxPart = max(maxPart, parts[i])
	}
	// Check the topic and partitions up front so bad input stores nothing.
	t, err := s.b.Topic(r.Context(), topic)
	if err != nil {
		return produceErr(topic, err)
	}
	if maxPart >= t.Partitions {
		return badRequest("partition %d does not exist: topic %q has partitions 0..%d", maxPart, topic, t.Partitions-1)
	}

	groups := make(map[int32][]int)
	var order []int32
	for i, p := range parts {
		if _, ok := groups[p]; !ok {
			order = append(order, p)
		}
		groups[p] = append(groups[p], i)
	}
	out := batchResponse{Count: len(recs), Offsets: make([]offsetJSON, len(recs))}
	stored := 0
	for _, p := range order {
		idx := groups[p]
		group := make([]broker.Record, len(idx))
		for j, i := range idx {
			group[j] = recs[i]
		}
		offs, err := s.b.ProduceRecords(r.Context(), topic, p, group, mode, batch.DefaultBuildOptions())
		if err != nil {
			if stored > 0 {
				err = fmt.Errorf("%d of %d records were stored before this error: %w", stored, len(recs), err)
			}
			return produceErr(topic, err)
		}
		for j, i := range idx {
			out.Offsets[i] = offsetJSON{Partition: offs[j].Partition, Offset: offs[j].Offset}
		}
		stored += len(idx)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
