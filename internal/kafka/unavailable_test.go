package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/objstore"
)

// A transient storage failure maps to a code clients retry, chosen per
// API; UNKNOWN_SERVER_ERROR stays for the unexpected.
func TestUnavailableErrorCodes(t *testing.T) {
	t.Parallel()
	s := &Server{log: slog.New(slog.DiscardHandler)}
	meta := fmt.Errorf("get topic: %w: connection refused", metadata.ErrUnavailable)
	for _, tc := range []struct {
		name string
		got  int16
		want *kerr.Error
	}{
		{"group api, metadata store", errorCode(meta), kerr.CoordinatorNotAvailable},
		{"group api, object store", errorCode(objstore.ErrInjected), kerr.CoordinatorNotAvailable},
		{"produce", s.codeFor(meta, "produce"), kerr.KafkaStorageError},
		{"fetch, object store", s.codeFor(fmt.Errorf("read: %w", objstore.ErrInjected), "fetch"), kerr.KafkaStorageError},
		{"metadata", s.codeFor(meta, "metadata"), kerr.LeaderNotAvailable},
		{"deadline", s.codeFor(context.DeadlineExceeded, "produce"), kerr.RequestTimedOut},
		{"bug", s.codeFor(fmt.Errorf("nil map"), "produce"), kerr.UnknownServerError},
	} {
		if tc.got != tc.want.Code {
			t.Errorf("%s: %v, want %v", tc.name, kerr.ErrorForCode(tc.got), tc.want)
		}
	}
}

// TestObjectStoreOutageIsRetriable: while the object store fails, a fetch
// that must read an object gets KAFKA_STORAGE_ERROR (which consumers
// retry), and an idempotent producer's records all arrive once the store
// is back.
func TestObjectStoreOutageIsRetriable(t *testing.T) {
	t.Parallel()
	for name, open := range metadatatest.Backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			local, err := objstore.NewLocal(filepath.Join(t.TempDir(), "storage"))
			if err != nil {
				t.Fatal(err)
			}
			faulty := objstore.NewFaulty(local)
			s := startServer(t, testOptions{store: open(t), bucket: faulty, readChunkBytes: 4096})
			s.dpTopic(t, "obj", 1, nil)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cl := s.client(kgo.DefaultProduceTopic("obj"), kgo.RequiredAcks(kgo.AllISRAcks()))
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("before")}).FirstErr(); err != nil {
				t.Fatal(err)
			}

			for _, op := range []objstore.Op{objstore.OpPut, objstore.OpGet, objstore.OpGetRange} {
				faulty.Inject(objstore.Fault{Op: op})
			}
			w := s.dpDial(t)
			resp := w.do(dpFetchReq(12, "obj", map[int32]int64{0: 0})).(*kmsg.FetchResponse)
			if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.KafkaStorageError.Code {
				t.Fatalf("fetch while the object store fails: %v, want KAFKA_STORAGE_ERROR", kerr.ErrorForCode(code))
			}
			const n = 50
			done := make(chan error, n)
			for i := range n {
				cl.Produce(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}, func(_ *kgo.Record, err error) { done <- err })
			}
			// The records wait for the store; none is acknowledged or failed.
			select {
			case err := <-done:
				t.Fatalf("a record finished while every upload failed: %v", err)
			case <-time.After(300 * time.Millisecond):
			}
			faulty.Clear()
			for range n {
				if err := <-done; err != nil {
					t.Fatalf("record failed after the outage: %v", err)
				}
			}
			if got := s.dpConsume(t, ctx, "obj", n+1); len(got) != n+1 {
				t.Fatalf("consumed %d records, want %d", len(got), n+1)
			}
		})
	}
}
