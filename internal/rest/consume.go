package rest

import (
	"errors"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/auth"
	"github.com/streamhouse/streamhouse/internal/authz"
	"github.com/streamhouse/streamhouse/internal/broker"
)

// Consume limits: maxRecords 0 or absent means 100 and it is capped at
// 10000, as on gRPC (broker.ConsumeRecordsLimit);
// max_bytes (the decoded bytes one request may hold, see
// broker.ConsumeBytes) defaults to 4 MiB and is capped at 16 MiB; wait_ms
// defaults to 0 (answer at once) and is capped at 30000.
const (
	defaultMaxBytes = broker.DefaultConsumeBytes
	maxMaxBytes     = 16 << 20
	maxWaitMs       = 30000
)

// consumedJSON is one consumed record. Key and value are null for null,
// text when every non-null one of them is valid UTF-8, and otherwise both
// base64 with encoding "base64". Header values are text, or all base64
// with headers_encoding "base64" when any is not valid UTF-8 (a null header
// value becomes ""; a repeated header key keeps its last value).
type consumedJSON struct {
	Partition       int32             `json:"partition"`
	Offset          int64             `json:"offset"`
	Key             *string           `json:"key"`
	Value           *string           `json:"value"`
	Timestamp       int64             `json:"timestamp"`
	Headers         map[string]string `json:"headers"`
	Encoding        string            `json:"encoding,omitempty"`
	HeadersEncoding string            `json:"headers_encoding,omitempty"`
}

// consumeResponse is GET /api/v1/consume. nextOffset is the offset to ask
// for next; highWatermark the offset the next produced record gets.
type consumeResponse struct {
	Records       []consumedJSON `json:"records"`
	NextOffset    int64          `json:"nextOffset"`
	HighWatermark int64          `json:"highWatermark"`
}

func toConsumedJSON(partition int32, rec broker.Record) consumedJSON {
	b64 := !validUTF8(rec.Key) || !validUTF8(rec.Value)
	out := consumedJSON{
		Partition: partition,
		Offset:    rec.Offset,
		Key:       textOrBase64(rec.Key, b64),
		Value:     textOrBase64(rec.Value, b64),
		Timestamp: rec.Timestamp,
		Headers:   make(map[string]string, len(rec.Headers)),
	}
	if b64 {
		out.Encoding = "base64"
	}
	hb64 := false
	for _, h := range rec.Headers {
		if !utf8.Valid(h.Value) {
			hb64 = true
		}
	}
	for _, h := range rec.Headers {
		out.Headers[h.Key] = *textOrBase64(append([]byte{}, h.Value...), hb64)
	}
	if hb64 {
		out.HeadersEncoding = "base64"
	}
	return out
}

func (s *server) consume(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	topic := q.Get("topic")
	if topic == "" {
		return badRequest("query parameter topic is required")
	}
	if err := s.authorize(r, authz.Need(acl.OpRead, acl.Topic(topic))); err != nil {
		return err
	}
	partition, err := queryInt(q, 0, "partition")
	if err != nil {
		return err
	}
	offset, err := queryInt(q, 0, "offset")
	if err != nil {
		return err
	}
	maxRecords, err := queryInt(q, 0, "maxRecords", "max_records", "limit")
	if err != nil {
		return err
	}
	maxBytes, err := queryInt(q, defaultMaxBytes, "max_bytes", "maxBytes")
	if err != nil {
		return err
	}
	waitMs, err := queryInt(q, 0, "wait_ms")
	if err != nil {
		return err
	}
	switch {
	case partition < 0 || partition > int64(broker.MaxPartitions):
		return badRequest("partition %d does not exist", partition)
	case offset < 0:
		return badRequest("offset %d is negative", offset)
	case maxRecords < 0:
		return badRequest("maxRecords must not be negative, not %d", maxRecords)
	case maxBytes <= 0:
		return badRequest("max_bytes must be positive, not %d", maxBytes)
	case waitMs < 0:
		return badRequest("wait_ms must not be negative, not %d", waitMs)
	}
	maxBytes = min(maxBytes, maxMaxBytes)
	waitMs = min(waitMs, maxWaitMs)

	p := int32(partition)
	ctx := r.Context()
	var guard *authz.Guard
	if waitMs > 0 {
		// A long poll stays authorized while it waits: it ends at once
		// with the 403 (401 once the user is deleted) when that
		// changes, and answers no record committed after. Its login is
		// this request's (Basic resends the password each time): it
		// waits at most until AUTH_SESSION_LIFETIME_MS passes, then
		// answers as a wait that found nothing does, never 401.
		if l, ok := auth.LoginFrom(ctx); ok {
			if exp := s.users.Expires(l); !exp.IsZero() {
				waitMs = max(0, min(waitMs, exp.Sub(s.users.Now()).Milliseconds()))
			}
		}
		ctx, guard = s.acl.GuardRequest(ctx, s.users, authz.Need(acl.OpRead, acl.Topic(topic)))
		defer guard.Stop()
	}
	res, err := s.b.ConsumeBytes(ctx, topic, p, offset, broker.ConsumeRecordsLimit(maxRecords), int(maxBytes), time.Duration(waitMs)*time.Millisecond)
	if guard != nil {
		if gerr := guard.Err(); gerr != nil {
			return gerr
		}
	}
	switch {
	case errors.Is(err, broker.ErrUnknownTopic):
		return notFound("topic %q does not exist", topic)
	case errors.Is(err, broker.ErrOffsetOutOfRange):
		logStart, hw, oerr := s.b.Offsets(r.Context(), topic, p)
		if oerr != nil {
			return badRequest("offset %d is out of range", offset)
		}
		return badRequest("offset %d is out of range: partition %d of %q has offsets %d..%d (%d is the next offset to be written)",
			offset, p, topic, logStart, hw, hw)
	case err != nil:
		return err
	}
	out := consumeResponse{Records: make([]consumedJSON, 0, len(res.Records)), NextOffset: res.NextOffset, HighWatermark: res.HighWatermark}
	for _, rec := range res.Records {
		out.Records = append(out.Records, toConsumedJSON(p, rec))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
