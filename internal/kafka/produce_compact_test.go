package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/batch"
)

// A record without a key on a topic with cleanup.policy=compact is
// refused with INVALID_RECORD and nothing is stored; keyed records go in.
func TestProduceKeylessOnCompactedTopic(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	s.dpTopic(t, "kc", 1, map[string]string{"cleanup.policy": "compact,delete"})
	w := s.dpDial(t)
	keyless := dpBatch(t, batch.DefaultBuildOptions(), batch.Record{Key: []byte("k"), Value: []byte("v")}, batch.Record{Value: []byte("no key")})
	p := w.do(dpProduceReq(9, "kc", 0, -1, keyless)).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
	if p.ErrorCode != kerr.InvalidRecord.Code || p.BaseOffset != -1 {
		t.Fatalf("keyless produce: code %d (%v) base %d, want INVALID_RECORD", p.ErrorCode, kerr.ErrorForCode(p.ErrorCode), p.BaseOffset)
	}
	if ls, hw := s.dpHW(t, "kc", 0); ls != 0 || hw != 0 {
		t.Fatalf("offsets %d..%d after a refused produce", ls, hw)
	}
	keyed := dpBatch(t, batch.DefaultBuildOptions(), batch.Record{Key: []byte("k"), Value: []byte("v")})
	p = w.do(dpProduceReq(9, "kc", 0, -1, keyed)).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
	if p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("keyed produce: code %d base %d", p.ErrorCode, p.BaseOffset)
	}
}
