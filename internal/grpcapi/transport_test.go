package grpcapi

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/streamhouse/streamhouse/internal/testutil"
	pb "github.com/streamhouse/streamhouse/proto/streamhousepb"
)

// Subscribe tails a partition: records produced after it started arrive,
// and the client's cancel ends it on the server too.
func TestSubscribeTailsAndStopsOnCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ServerOptions{})
	e.createTopic(t, "t", 1, nil)
	ctx := testCtx(t)
	produce := func(v string) {
		t.Helper()
		if _, err := e.c.Produce(ctx, &pb.ProduceRequest{Topic: "t", Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	produce("old-0")
	produce("old-1")

	// From the high watermark (offset unset): only what comes next.
	tailCtx, cancelTail := context.WithCancel(ctx)
	tail, err := e.c.Subscribe(tailCtx, &pb.SubscribeRequest{Topic: "t"})
	if err != nil {
		t.Fatal(err)
	}
	// From offset 0, one record per message: history, then the tail.
	fromCtx, cancelFrom := context.WithCancel(ctx)
	defer cancelFrom()
	from, err := e.c.Subscribe(fromCtx, &pb.SubscribeRequest{Topic: "t", Offset: ptr[uint64](0), MaxRecords: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		m, err := from.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Records) != 1 || m.Records[0].Offset != uint64(i) || string(m.Records[0].Value) != "old-"+strconv.Itoa(i) {
			t.Fatalf("history message %d: %v", i, m)
		}
	}
	// The headers say the tail is in place, starting at the old high
	// watermark.
	md, err := tail.Header()
	if err != nil {
		t.Fatal(err)
	}
	if got := md.Get(StartOffsetHeader); len(got) != 1 || got[0] != "2" {
		t.Fatalf("start offset header %v, want 2", got)
	}
	for i := range 3 {
		produce("new-" + strconv.Itoa(i))
	}
	var got []*pb.ConsumedRecord
	for len(got) < 3 {
		m, err := tail.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Records) == 0 {
			t.Fatal("empty message")
		}
		got = append(got, m.Records...)
		if m.HighWatermark < m.Records[len(m.Records)-1].Offset+1 {
			t.Fatalf("high watermark %d below the records %v", m.HighWatermark, m.Records)
		}
	}
	for i, r := range got {
		if r.Offset != uint64(2+i) || string(r.Value) != "new-"+strconv.Itoa(i) {
			t.Fatalf("tail record %d: %v (old records must not be streamed)", i, r)
		}
	}
	for i := range 3 {
		m, err := from.Recv()
		if err != nil || m.Records[0].Offset != uint64(2+i) {
			t.Fatalf("from-0 message %d: %v %v", 2+i, m, err)
		}
	}

	// Cancel: the client sees Canceled at once, and the server's handler
	// returns (it counts the stream as ended Canceled).
	cancelTail()
	if _, err := tail.Recv(); status.Code(err) != codes.Canceled {
		t.Fatalf("after cancel: %v", err)
	}
	ended := e.srv.metrics.requests.WithLabelValues("/streamhouse.StreamHouse/Subscribe", codes.Canceled.String())
	testutil.WaitFor(t, "the server to end the canceled Subscribe", func() bool { return counterValue(t, ended) == 1 })
	cancelFrom()
	testutil.WaitFor(t, "the server to end the second Subscribe", func() bool { return counterValue(t, ended) == 2 })
}

func TestReflectionListsTheService(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ServerOptions{})
	stream, err := reflectionpb.NewServerReflectionClient(e.conn).ServerReflectionInfo(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	services := map[string]bool{}
	for _, s := range resp.GetListServicesResponse().GetService() {
		services[s.Name] = true
	}
	for _, want := range []string{ServiceName, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
		if !services[want] {
			t.Errorf("reflection lists %v, missing %s", services, want)
		}
	}
	// The service's descriptor is there too (what grpcurl needs).
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: ServiceName + ".Subscribe"}}); err != nil {
		t.Fatal(err)
	}
	resp, err = stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetFileDescriptorResponse().GetFileDescriptorProto()) == 0 {
		t.Fatalf("no descriptor for the service: %v", resp)
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ServerOptions{})
	h := healthpb.NewHealthClient(e.conn)
	check := func(service string, want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		res, err := h.Check(testCtx(t), &healthpb.HealthCheckRequest{Service: service})
		if err != nil || res.Status != want {
			t.Fatalf("health of %q: %v %v, want %s", service, res, err, want)
		}
	}
	check("", healthpb.HealthCheckResponse_SERVING)
	check(ServiceName, healthpb.HealthCheckResponse_SERVING)
	e.srv.SetServing(false)
	check("", healthpb.HealthCheckResponse_NOT_SERVING)
	check(ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	e.srv.SetServing(true)
	check(ServiceName, healthpb.HealthCheckResponse_SERVING)
}

// MaxConcurrentStreams=1: while one stream is open, a second call on the
// same connection waits for it.
func TestMaxConcurrentStreamsLimitsCalls(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ServerOptions{MaxConcurrentStreams: 1})
	e.createTopic(t, "t", 1, nil)
	subCtx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	sub, err := e.c.Subscribe(subCtx, &pb.SubscribeRequest{Topic: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Header(); err != nil { // the server holds the stream now
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(testCtx(t), 300*time.Millisecond)
	defer cancelShort()
	_, err = e.c.ListTopics(short, &pb.ListTopicsRequest{})
	wantCode(t, "second call while the stream holds the only slot", err, codes.DeadlineExceeded)
	cancel()
	_, _ = sub.Recv()
	if _, err := e.c.ListTopics(testCtx(t), &pb.ListTopicsRequest{}); err != nil {
		t.Fatalf("after the stream ended: %v", err)
	}
}

// Every GRPC_* setting reaches the HTTP/2 transport: read the server's
// SETTINGS and connection WINDOW_UPDATE, then let it ping an idle
// connection and close it when the ping goes unanswered.
func TestServerOptionsReachTheTransport(t *testing.T) {
	t.Parallel()
	opts := ServerOptions{
		MaxConcurrentStreams:    7,
		KeepaliveInterval:       time.Second, // gRPC's minimum
		KeepaliveTimeout:        500 * time.Millisecond,
		InitialStreamWindowSize: 1 << 20,
		InitialConnWindowSize:   2 << 20,
	}
	e := newEnv(t, opts)
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}

	settings := map[http2.SettingID]uint32{}
	var connWindowIncrement uint32
	var pingAt, closedAt time.Time
	start := time.Now()
	for closedAt.IsZero() {
		f, err := fr.ReadFrame()
		if err != nil {
			if errors.Is(err, io.EOF) || !pingAt.IsZero() {
				closedAt = time.Now()
				break
			}
			t.Fatalf("read frame: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				continue
			}
			_ = f.ForeachSetting(func(s http2.Setting) error {
				settings[s.ID] = s.Val
				return nil
			})
			if err := fr.WriteSettingsAck(); err != nil {
				t.Fatal(err)
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				connWindowIncrement += f.Increment
			}
		case *http2.PingFrame:
			if !f.IsAck() && pingAt.IsZero() {
				pingAt = time.Now() // and never answer it
			}
		case *http2.GoAwayFrame:
			closedAt = time.Now()
		}
	}
	if got := settings[http2.SettingMaxConcurrentStreams]; got != opts.MaxConcurrentStreams {
		t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS = %d, want %d", got, opts.MaxConcurrentStreams)
	}
	if got := settings[http2.SettingInitialWindowSize]; got != uint32(opts.InitialStreamWindowSize) {
		t.Errorf("SETTINGS_INITIAL_WINDOW_SIZE = %d, want %d", got, opts.InitialStreamWindowSize)
	}
	if want := uint32(opts.InitialConnWindowSize) - 65535; connWindowIncrement != want {
		t.Errorf("connection WINDOW_UPDATE = %d, want %d", connWindowIncrement, want)
	}
	if pingAt.IsZero() {
		t.Fatal("the server never sent a keepalive ping")
	}
	if idle := pingAt.Sub(start); idle < 900*time.Millisecond || idle > 5*time.Second {
		t.Errorf("keepalive ping after %s idle, want about %s", idle, opts.KeepaliveInterval)
	}
	if wait := closedAt.Sub(pingAt); wait > 5*time.Second {
		t.Errorf("connection closed %s after the unanswered ping, want about %s", wait, opts.KeepaliveTimeout)
	}
}

// Zero options keep gRPC's defaults: no settings are added.
func TestZeroServerOptionsAddNothing(t *testing.T) {
	t.Parallel()
	if n := len(ServerOptions{}.grpcOptions()); n != 0 {
		t.Fatalf("zero ServerOptions give %d gRPC options", n)
	}
	if n := len((ServerOptions{KeepaliveTimeout: time.Second}).grpcOptions()); n != 1 {
		t.Fatalf("a keepalive timeout alone gives %d gRPC options, want 1", n)
	}
}
