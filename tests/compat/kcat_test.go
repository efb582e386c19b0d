package compat

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/e2e"
)

// kcatRecord is one line of `kcat -C -J`.
type kcatRecord struct {
	Topic     string   `json:"topic"`
	Partition int32    `json:"partition"`
	Offset    int64    `json:"offset"`
	TsType    string   `json:"tstype"`
	Ts        int64    `json:"ts"`
	Headers   []string `json:"headers"` // name, value, name, value, …
	Key       *string  `json:"key"`
	Payload   *string  `json:"payload"`
}

// sent is a record as a test produced it; nil means null.
type sent struct {
	key, value *string
}

func str(s string) *string { return &s }

// kcatInput renders records for `kcat -P -K '\t' -Z`: one line each, key
// and value separated by a tab; with -Z an empty key or value is sent as
// null.
func kcatInput(recs []sent) string {
	var b strings.Builder
	for _, r := range recs {
		if r.key != nil {
			b.WriteString(*r.key)
		}
		b.WriteByte('\t')
		if r.value != nil {
			b.WriteString(*r.value)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// kcatConsume reads a whole single-partition topic from the beginning, with
// librdkafka checking every batch CRC.
func kcatConsume(t *testing.T, addr, topic string) []kcatRecord {
	t.Helper()
	out := run(t, 60*time.Second, "", "kcat", "-b", addr, "-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q",
		"-X", "check.crcs=true")
	var recs []kcatRecord
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var r kcatRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("kcat output %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

func pstr(p *string) string {
	if p == nil {
		return "<null>"
	}
	if len(*p) > 40 {
		return strconv.Quote((*p)[:40]) + fmt.Sprintf("…(%d bytes)", len(*p))
	}
	return strconv.Quote(*p)
}

func samePtr(a, b *string) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

// checkKcatRecords compares what kcat read back with what was produced:
// dense offsets from 0, keys, values and headers byte for byte, and create
// timestamps taken between before and after.
func checkKcatRecords(t *testing.T, topic string, got []kcatRecord, want []sent, headers []string, before, after time.Time) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: read %d records, produced %d", topic, len(got), len(want))
	}
	var bad []string
	for i, r := range got {
		w := want[i]
		var diffs []string
		if r.Topic != topic || r.Partition != 0 || r.Offset != int64(i) {
			diffs = append(diffs, fmt.Sprintf("at %s/%d/%d", r.Topic, r.Partition, r.Offset))
		}
		if !samePtr(r.Key, w.key) {
			diffs = append(diffs, fmt.Sprintf("key %s, want %s", pstr(r.Key), pstr(w.key)))
		}
		if !samePtr(r.Payload, w.value) {
			diffs = append(diffs, fmt.Sprintf("value %s, want %s", pstr(r.Payload), pstr(w.value)))
		}
		if !slices.Equal(r.Headers, headers) {
			diffs = append(diffs, fmt.Sprintf("headers %q, want %q", r.Headers, headers))
		}
		// Kafka timestamps are milliseconds; allow for the truncation.
		if r.TsType != "create" || r.Ts < before.UnixMilli()-1 || r.Ts > after.UnixMilli()+1 {
			diffs = append(diffs, fmt.Sprintf("timestamp %s %d, want create time in [%d, %d]", r.TsType, r.Ts,
				before.UnixMilli(), after.UnixMilli()))
		}
		if len(diffs) > 0 {
			bad = append(bad, fmt.Sprintf("record %d: %s", i, strings.Join(diffs, "; ")))
		}
	}
	if n := len(bad); n > 0 {
		more := ""
		if len(bad) > 8 {
			more = fmt.Sprintf("\n…and %d more", len(bad)-8)
			bad = bad[:8]
		}
		t.Errorf("%s: %d of %d records differ from what was produced:\n%s%s", topic, n, len(got), strings.Join(bad, "\n"), more)
	}
}

// TestKcat drives librdkafka through kcat: metadata, every compression
// codec with keys, headers and nulls, each acks level, and the idempotent
// producer.
func TestKcat(t *testing.T) {
	t.Parallel()
	needTool(t, "kcat")
	for _, be := range e2e.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, be)
			addr := s.KafkaAddr

			t.Run("metadata", func(t *testing.T) {
				s.createTopic("kcat-meta", 3)
				var md struct {
					ControllerID int32 `json:"controllerid"`
					Brokers      []struct {
						ID   int32  `json:"id"`
						Name string `json:"name"`
					} `json:"brokers"`
					Topics []struct {
						Topic      string `json:"topic"`
						Error      string `json:"error"`
						Partitions []struct {
							Partition int32  `json:"partition"`
							Leader    int32  `json:"leader"`
							Error     string `json:"error"`
						} `json:"partitions"`
					} `json:"topics"`
				}
				out := run(t, 30*time.Second, "", "kcat", "-b", addr, "-L", "-J", "-t", "kcat-meta")
				if err := json.Unmarshal(out, &md); err != nil {
					t.Fatalf("kcat -L -J: %v\n%s", err, out)
				}
				if len(md.Brokers) != 1 || md.Brokers[0].Name != addr {
					t.Fatalf("brokers %+v, want one advertised as %s", md.Brokers, addr)
				}
				id := md.Brokers[0].ID
				if md.ControllerID != id {
					t.Errorf("controller %d, want broker %d", md.ControllerID, id)
				}
				if len(md.Topics) != 1 || md.Topics[0].Topic != "kcat-meta" || md.Topics[0].Error != "" {
					t.Fatalf("topics %+v, want kcat-meta without error", md.Topics)
				}
				var parts []int32
				for _, p := range md.Topics[0].Partitions {
					if p.Leader != id || p.Error != "" {
						t.Errorf("partition %d: leader %d error %q, want leader %d", p.Partition, p.Leader, p.Error, id)
					}
					parts = append(parts, p.Partition)
				}
				slices.Sort(parts)
				if !slices.Equal(parts, []int32{0, 1, 2}) {
					t.Errorf("partitions %v, want [0 1 2]", parts)
				}
			})

			// Large enough that every codec really compresses a batch.
			big := strings.Repeat("streamhouse is an S3-native Kafka ", 1000)
			recs := []sent{
				{str("k1"), str("hello")},
				{nil, str("no key")},
				{str("tombstone"), nil},
				{str("ключ-✓"), str(`héllo wörld "quoted" back\slash {json: 1}`)},
				{str("big"), str(big)},
				{str("k6"), str("after the big one")},
			}
			headers := []string{"trace", "abc-123", "dup", "1", "dup", "2", "empty", "", "utf8", "zürich ✓"}
			var hargs []string
			for i := 0; i < len(headers); i += 2 {
				hargs = append(hargs, "-H", headers[i]+"="+headers[i+1])
			}
			for _, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
				t.Run("codec-"+codec, func(t *testing.T) {
					topic := "kcat-codec-" + codec
					s.createTopic(topic, 1)
					before := time.Now()
					args := append([]string{"-b", addr, "-P", "-t", topic, "-K", `\t`, "-Z", "-z", codec,
						"-X", "acks=all", "-X", "linger.ms=50"}, hargs...)
					run(t, 60*time.Second, kcatInput(recs), "kcat", args...)
					after := time.Now()
					checkKcatRecords(t, topic, kcatConsume(t, addr, topic), recs, headers, before, after)
				})
			}

			for _, acks := range []string{"all", "1", "0"} {
				t.Run("acks-"+acks, func(t *testing.T) {
					topic := "kcat-acks-" + acks
					s.createTopic(topic, 1)
					var recs []sent
					for i := range 20 {
						recs = append(recs, sent{str(fmt.Sprintf("key-%d", i)), str(fmt.Sprintf("value-%d", i))})
					}
					before := time.Now()
					run(t, 60*time.Second, kcatInput(recs), "kcat", "-b", addr, "-P", "-t", topic, "-K", `\t`,
						"-X", "acks="+acks)
					after := time.Now()
					// With acks=0 kcat cannot know when the server has
					// appended, so wait for the records to show up.
					var got []kcatRecord
					eventually(t, 30*time.Second, "records readable", func() error {
						got = kcatConsume(t, addr, topic)
						if len(got) < len(recs) {
							return fmt.Errorf("%d of %d records", len(got), len(recs))
						}
						return nil
					})
					checkKcatRecords(t, topic, got, recs, nil, before, after)
				})
			}

			// One record per Produce request, many requests in flight on
			// one connection (librdkafka's default without idempotence):
			// Kafka handles a connection's requests one after another, so
			// the log keeps the order they were sent in.
			t.Run("pipelined-order", func(t *testing.T) {
				topic := "kcat-pipelined"
				s.createTopic(topic, 1)
				var recs []sent
				for i := range 200 {
					recs = append(recs, sent{str(fmt.Sprintf("key-%d", i)), str(fmt.Sprintf("value-%04d", i))})
				}
				before := time.Now()
				run(t, 60*time.Second, kcatInput(recs), "kcat", "-b", addr, "-P", "-t", topic, "-K", `\t`,
					"-X", "acks=1", "-X", "batch.num.messages=1", "-X", "linger.ms=0",
					"-X", "max.in.flight.requests.per.connection=20")
				after := time.Now()
				checkKcatRecords(t, topic, kcatConsume(t, addr, topic), recs, nil, before, after)
			})

			t.Run("idempotence", func(t *testing.T) {
				topic := "kcat-idempotent"
				s.createTopic(topic, 1)
				var recs []sent
				for i := range 500 {
					recs = append(recs, sent{str(fmt.Sprintf("key-%d", i%7)), str(fmt.Sprintf("value-%04d", i))})
				}
				before := time.Now()
				// Small batches and several in flight: the sequence numbers
				// of many batches per request stream must be accepted.
				run(t, 60*time.Second, kcatInput(recs), "kcat", "-b", addr, "-P", "-t", topic, "-K", `\t`,
					"-X", "enable.idempotence=true", "-X", "batch.num.messages=20", "-X", "linger.ms=5",
					"-X", "max.in.flight.requests.per.connection=5", "-z", "lz4")
				after := time.Now()
				checkKcatRecords(t, topic, kcatConsume(t, addr, topic), recs, nil, before, after)
			})
		})
	}
}
