package kafka

import (
	"bufio"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/group"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

// dialFrom opens a raw connection to s from a given loopback address.
func (s *testServer) dialFrom(t *testing.T, local string) *dpWire {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	nc, err := d.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return &dpWire{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// alive reports whether the connection still answers an ApiVersions
// request.
func (w *dpWire) alive() bool {
	w.t.Helper()
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 3
	req.ClientSoftwareName, req.ClientSoftwareVersion = "dp", "1"
	_ = w.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	w.corr++
	frame := dpFrame(req, w.corr)
	if _, err := w.nc.Write(binary.BigEndian.AppendUint32(nil, uint32(len(frame)))); err != nil {
		return false
	}
	if _, err := w.nc.Write(frame); err != nil {
		return false
	}
	resp, err := w.read(req, w.corr)
	return err == nil && resp.(*kmsg.ApiVersionsResponse).ErrorCode == 0
}

// TestConnLimits: connections over KAFKA_MAX_CONNECTIONS_PER_IP or
// KAFKA_MAX_CONNECTIONS are closed at accept; closing one makes room.
func TestConnLimits(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{kafka: func(c *Config) { c.MaxConnections, c.MaxConnectionsPerIP = 3, 2 }})
	a1, a2 := s.dialFrom(t, "127.0.0.1"), s.dialFrom(t, "127.0.0.1")
	if !a1.alive() || !a2.alive() {
		t.Fatal("connections within the limits refused")
	}
	if a3 := s.dialFrom(t, "127.0.0.1"); a3.alive() {
		t.Fatal("a third connection from one IP served with a per-IP limit of 2")
	}
	b1 := s.dialFrom(t, "127.0.0.2")
	if !b1.alive() {
		t.Fatal("a connection from another IP refused")
	}
	if c1 := s.dialFrom(t, "127.0.0.3"); c1.alive() {
		t.Fatal("a fourth connection served with a limit of 3")
	}
	_ = a1.nc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if s.dialFrom(t, "127.0.0.1").alive() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no room after a connection closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestConnIdleAndSlow: an idle connection is closed after
// ConnectionsMaxIdle, but not while a long poll is in flight; a frame that
// has begun and does not complete is dropped.
func TestConnIdleAndSlow(t *testing.T) {
	t.Parallel()
	const idle = 300 * time.Millisecond
	s := startServer(t, testOptions{kafka: func(c *Config) { c.ConnectionsMaxIdle, c.FrameReadTimeout = idle, idle }})
	s.dpTopic(t, "idle", 1, nil)

	quiet := s.dpDial(t)
	if !quiet.closed(10 * time.Second) {
		t.Fatal("idle connection left open")
	}

	// A long poll three times the idle time keeps its connection.
	poll := s.dpDial(t)
	req := dpFetchReq(12, "idle", map[int32]int64{0: 0})
	req.MinBytes, req.MaxWaitMillis = 1, int32(3*idle/time.Millisecond)
	start := time.Now()
	resp, err := poll.read(req, poll.send(req))
	if err != nil {
		t.Fatalf("long poll on a connection idle otherwise: %v", err)
	}
	if d := time.Since(start); d < 3*idle-50*time.Millisecond {
		t.Fatalf("long poll answered after %v", d)
	}
	if code := resp.(*kmsg.FetchResponse).Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("long poll: %v", kerr.ErrorForCode(code))
	}

	// Slowloris: half a frame, then nothing.
	for _, partial := range [][]byte{
		{0, 0},                                  // half a size prefix
		{0, 0, 0, 100, 0, 18, 0, 3, 0, 0, 0, 1}, // a size and part of the header
	} {
		slow := s.dpDial(t)
		if _, err := slow.nc.Write(partial); err != nil {
			t.Fatal(err)
		}
		if !slow.closed(10 * time.Second) {
			t.Fatalf("partial frame %v left open", partial)
		}
	}
}

// TestRequestCaps: only Produce may send large frames; any other request
// over its cap closes the connection on the size prefix, before the body.
func TestRequestCaps(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	s.dpTopic(t, "caps", 1, map[string]string{"max.message.bytes": "4194304"})
	prefix := func(size uint32, key int16) []byte {
		b := binary.BigEndian.AppendUint32(nil, size)
		return kbin.AppendInt16(b, key)
	}
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"create topics over 1 MiB", prefix(smallRequestCap+1, 19)},
		{"api versions over 1 MiB", prefix(smallRequestCap+1, apiVersionsKey)},
		{"metadata over 8 MiB", prefix(largeRequestCap+1, metadataKey)},
		{"fetch over 8 MiB", prefix(largeRequestCap+1, fetchKey)},
		{"produce over 100 MiB", prefix(100<<20+1, produceKey)},
	} {
		w := s.dpDial(t)
		if _, err := w.nc.Write(tc.raw); err != nil {
			t.Fatal(err)
		}
		if !w.closed(5 * time.Second) {
			t.Errorf("%s: connection left open", tc.name)
		}
	}
	// A Produce of 2 MiB is fine.
	big := make([]byte, 2<<20)
	w := s.dpDial(t)
	resp := w.do(dpProduceReq(9, "caps", 0, -1, dpBatch(t, batch.DefaultBuildOptions(), batch.Record{Value: big, Timestamp: 1}))).(*kmsg.ProduceResponse)
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("2 MiB produce: %v", kerr.ErrorForCode(code))
	}
}

// TestInflightBudget: a request waits for room in the shared budget of
// request bytes, and goes on when the room is freed.
func TestInflightBudget(t *testing.T) {
	t.Parallel()
	const frameTimeout = 2 * time.Second
	s := startServer(t, testOptions{kafka: func(c *Config) {
		c.MaxRequestBytes, c.MaxInflightRequestBytes, c.FrameReadTimeout = largeRequestCap, largeRequestCap, frameTimeout
	}})
	// A produce frame claiming the whole budget, of which only the start
	// arrives: it holds the budget until it is dropped.
	hog := s.dpDial(t)
	if _, err := hog.nc.Write(binary.BigEndian.AppendUint32(nil, largeRequestCap)); err != nil {
		t.Fatal(err)
	}
	if _, err := hog.nc.Write(kbin.AppendInt16(nil, produceKey)); err != nil {
		t.Fatal(err)
	}
	// Wait until the budget is taken.
	deadline := time.Now().Add(10 * time.Second)
	for s.srv.inflight.TryAcquire(1) {
		s.srv.inflight.Release(1)
		if time.Now().After(deadline) {
			t.Fatal("the partial produce frame took no budget")
		}
		time.Sleep(5 * time.Millisecond)
	}
	w := s.dpDial(t)
	start := time.Now()
	if !w.alive() {
		t.Fatal("request not served once the budget was freed")
	}
	if d := time.Since(start); d < frameTimeout/2 {
		t.Fatalf("request served after %v while the budget was held", d)
	}
	if !hog.closed(10 * time.Second) {
		t.Fatal("the partial frame's connection left open")
	}
}

// A JoinGroup parked at the barrier holds none of the request budget once
// decoded: a group's rebalance can last minutes, and while budget is held
// other clients' requests (their heartbeats among them) cannot even be
// read.
func TestParkedJoinHoldsNoBudget(t *testing.T) {
	t.Parallel()
	const budget = largeRequestCap
	s := startServer(t, testOptions{kafka: func(c *Config) { c.MaxRequestBytes, c.MaxInflightRequestBytes = budget, budget }})
	a := s.grpDial(t)
	grpJoined(t, a, "g", nil) // a leads a stable group, rebalance timeout 10 s

	// b joins: the barrier waits for a to rejoin, up to 10 s.
	b := s.grpDial(t)
	first := b.do(9, grpJoinReq("g", "")).(*kmsg.JoinGroupResponse)
	grpCode(t, "b's first join", first.ErrorCode, kerr.MemberIDRequired)
	join := grpJoinReq("g", first.MemberID)
	join.SetVersion(9)
	frame := dpFrame(join, 2)
	if _, err := b.nc.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(frame))), frame...)); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "b parked at the barrier", func() bool {
		d, ok := s.srv.groups.Describe(t.Context(), "g")
		return ok && len(d.Members) == 2 && d.State == group.PreparingRebalance
	})
	if !s.srv.inflight.TryAcquire(budget) {
		t.Fatal("a JoinGroup parked at the barrier holds request budget")
	}
	s.srv.inflight.Release(budget)
}
