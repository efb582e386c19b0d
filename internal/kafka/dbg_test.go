package kafka

import (
	"context"
	"io"
	"log/slog"
	"math/rand"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/broker"
	shlog "github.com/streamhouse/streamhouse/internal/log"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/objstore"
)

func TestDbgSlow(t *testing.T) {
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	store := metadatatest.OpenSQLite(t)
	bucket, _ := objstore.NewLocal(filepath.Join(t.TempDir(), "storage"))
	plog, _ := shlog.Open(ctx, shlog.Config{AgentID: "fz", Bucket: bucket, Store: store, Logger: logger})
	b, _ := broker.New(ctx, broker.Config{AgentID: "fz", Addr: "127.0.0.1:9092", Store: store, Log: plog, Logger: logger})
	b.CreateTopic(ctx, broker.TopicSpec{Name: "t", Partitions: 2}, false)
	srv := New(Config{Broker: b, Logger: logger, AdvertisedAddr: "127.0.0.1:9092"})
	a, _ := net.Pipe()
	c := newConn(srv, a)
	rnd := rand.New(rand.NewSource(1))
	strs := []string{"", "g", "h", "m", "i", "t"}
	for i := 0; i < 20000; i++ {
		key := grpKeys[rnd.Intn(len(grpKeys))]
		h := handlers[key]
		version := h.minVersion + int16(rnd.Intn(int(h.maxVersion-h.minVersion+1)))
		g, m, in := strs[rnd.Intn(6)], strs[rnd.Intn(6)], strs[rnd.Intn(6)]
		gen, n := int32(rnd.Intn(5)-1), int32(rnd.Intn(20000))
		built := grpFuzzRequest(key, g, m, in, gen, n, []byte{1, 2})
		built.SetVersion(version)
		req := kmsg.RequestForKey(key)
		req.SetVersion(version)
		req.ReadFrom(built.AppendTo(nil))
		hctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		start := time.Now()
		h.fn(hctx, c, req)
		cancel()
		if d := time.Since(start); d > 200*time.Millisecond {
			t.Logf("%v: %s v%d g=%q m=%q i=%q gen=%d n=%d", d, kmsg.NameForKey(key), version, g, m, in, gen, n)
		}
	}
}
