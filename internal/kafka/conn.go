package kafka

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/auth"
)

// conn is one client connection. Requests are read and handled
// concurrently (bounded by MaxInflightPerConn), and responses are written in
// request order, as the protocol requires.
type conn struct {
	s      *Server
	nc     net.Conn
	ctx    context.Context
	cancel context.CancelFunc
	log    interface {
		Debug(string, ...any)
		Info(string, ...any)
		Warn(string, ...any)
	}

	// host is the client's IP address, for ACLs (authz.go).
	host string

	// ClientID of the last request (clients send the same on every request).
	clientID string

	// tlsState is the connection's TLS state once its handshake is done
	// (the verified client certificate, under mutual TLS, is in
	// VerifiedChains); nil on a plaintext listener.
	tlsState *tls.ConnectionState

	closeOnce sync.Once

	// lastProduce is the done channel of the previous produce request's
	// order slot (00_produce.go); only readLoop touches it.
	lastProduce chan struct{}

	// For connections.max.idle.ms: requests read and not yet answered, and
	// when a response was last written (UnixNano).
	unanswered atomic.Int64
	lastWrite  atomic.Int64

	// login is the connection's authentication (auth.go).
	login login

	// muted holds off reading while a client quota throttles the
	// connection (quotas.go).
	muted quotaMute
}

// requestHeader is a parsed Kafka request header.
type requestHeader struct {
	key           int16
	version       int16
	correlationID int32
	clientID      *string
}

// pending is one request's place in the response order.
type pending struct {
	hdr  requestHeader
	done chan struct{}
	resp kmsg.Response // nil: nothing to send
	err  error
	// closeAfter: close the connection once resp is written (a refused
	// login, auth.go).
	closeAfter bool
}

func newConn(s *Server, nc net.Conn) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{s: s, nc: nc, host: remoteHost(nc), ctx: ctx, cancel: cancel, log: s.log.With("remote", nc.RemoteAddr().String())}
	c.lastWrite.Store(time.Now().UnixNano())
	return c
}

func (c *conn) close() {
	c.closeOnce.Do(func() {
		c.cancel()
		_ = c.nc.Close()
		// Fetch sessions die with their connection (fetch_sessions.go).
		c.s.sessions.dropOwner(c)
	})
}

// serve runs the connection until the client leaves, a request is
// malformed, or the server closes.
func (c *conn) serve() {
	defer c.close()
	if err := c.handshake(); err != nil {
		c.s.metrics.requestsRejected.WithLabelValues("tls_handshake").Inc()
		c.log.Debug("kafka TLS handshake failed", "err", err)
		return
	}
	queue := make(chan *pending, c.s.cfg.MaxInflightPerConn)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop(queue)
	}()
	err := c.readLoop(queue)
	close(queue)
	<-writerDone
	switch {
	case errors.Is(err, errLoginClosed):
		c.log.Info("closing kafka connection", "client_id", c.clientID, "err", err)
	case err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && c.ctx.Err() == nil:
		c.log.Warn("closing kafka connection", "client_id", c.clientID, "err", err)
	}
}

// handshake completes the TLS handshake of a connection on a TLS listener
// (a client that sends plaintext, or a certificate the server does not
// accept, fails it) and keeps its state. It does nothing on a plaintext
// listener.
func (c *conn) handshake() error {
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.s.cfg.FrameReadTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return err
	}
	cs := tc.ConnectionState()
	c.tlsState = &cs
	return nil
}

// errIdle closes a connection idle for longer than ConnectionsMaxIdle.
var errIdle = errors.New("connection idle for longer than connections.max.idle.ms")

// readLoop reads requests and starts their handlers, in order.
func (c *conn) readLoop(queue chan<- *pending) error {
	br := bufio.NewReaderSize(c.nc, 64<<10)
	for {
		if c.login.raw {
			if err := c.readRawSASL(br, queue); err != nil {
				return err
			}
			continue
		}
		size, err := c.readSize(br)
		if err != nil {
			return err
		}
		// The frame has begun: the rest must come in time (slowloris).
		deadline := time.Now().Add(c.s.cfg.FrameReadTimeout + time.Duration(size>>20)*time.Second)
		_ = c.nc.SetReadDeadline(deadline)
		if size > max(c.s.cfg.MaxRequestBytes, largeRequestCap) {
			c.s.metrics.requestsRejected.WithLabelValues("too_large").Inc()
			return fmt.Errorf("request of %d bytes is over every cap", size)
		}
		if size < 8 {
			c.s.metrics.requestsRejected.WithLabelValues("malformed").Inc()
			return fmt.Errorf("request of %d bytes is shorter than a request header", size)
		}
		keyBytes, err := br.Peek(2)
		if err != nil {
			c.dropReason(err)
			return fmt.Errorf("read request header: %w", err)
		}
		key := int16(binary.BigEndian.Uint16(keyBytes))
		if limit := c.s.requestCap(key); size > limit {
			c.s.metrics.requestsRejected.WithLabelValues("too_large").Inc()
			return fmt.Errorf("request of %d bytes for api key %d is over its cap of %d bytes", size, key, limit)
		}
		// A client quota's throttle holds the request back, before it
		// takes any budget (quotas.go).
		if err := c.waitMuted(); err != nil {
			return err
		}
		// Wait for room in the shared budget before holding the body.
		if err := c.s.inflight.Acquire(c.ctx, int64(size)); err != nil {
			return err
		}
		release := sync.OnceFunc(func() { c.s.inflight.Release(int64(size)) })
		// Time spent waiting for budget (or a throttle) is not the client's.
		_ = c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.FrameReadTimeout + time.Duration(size>>20)*time.Second))
		buf := make([]byte, size)
		if _, err := io.ReadFull(br, buf); err != nil {
			release()
			c.dropReason(err)
			return fmt.Errorf("read request body: %w", err)
		}
		p, fn, req, err := c.parse(buf)
		if key != produceKey || err != nil || fn == nil {
			// Decoded: only a produce keeps its frame (the records go to
			// the write buffer as they are), and a request that parks (a
			// fetch's long poll, JoinGroup at the barrier, SyncGroup
			// waiting for the leader) must not hold budget that other
			// clients' heartbeats need to be read at all.
			release()
		}
		if err != nil {
			c.s.metrics.requestsRejected.WithLabelValues("malformed").Inc()
			return err
		}
		if err := c.gate(p.hdr.key); err != nil {
			release()
			return err
		}
		c.unanswered.Add(1)
		select {
		case queue <- p:
		case <-c.ctx.Done():
			release()
			return c.ctx.Err()
		}
		if fn == nil {
			close(p.done) // response prepared by parse
			continue
		}
		ctx := auth.WithPrincipal(c.ctx, c.Principal())
		if p.hdr.clientID != nil {
			ctx = context.WithValue(ctx, clientIDKey{}, *p.hdr.clientID)
		}
		if isSASLKey(p.hdr.key) {
			// Logins are handled here, in order (auth.go).
			p.resp, p.err = fn(ctx, c, req)
			p.closeAfter = c.login.closeAfter
			release()
			close(p.done)
			if p.err != nil || p.closeAfter {
				return fmt.Errorf("SASL %s answered: %w", apiName(p.hdr.key), errLoginClosed)
			}
			continue
		}
		// Produce requests append in arrival order (00_produce.go).
		var slot *orderSlot
		if p.hdr.key == produceKey {
			ctx = c.throttleProduce(ctx, size)
			slot = newOrderSlot(c.lastProduce)
			c.lastProduce = slot.done
			ctx = withOrderSlot(ctx, slot)
		}
		go func() {
			defer release()
			defer close(p.done)
			defer slot.release()
			defer func() {
				if r := recover(); r != nil {
					p.err = fmt.Errorf("panic handling api key %d v%d: %v", p.hdr.key, p.hdr.version, r)
				}
			}()
			start := time.Now()
			p.resp, p.err = fn(ctx, c, req)
			c.s.metrics.observe(p.hdr.key, start, p.resp, p.err)
		}()
	}
}

// readSize reads the size prefix of the next request. While waiting for
// its first byte the connection may idle for ConnectionsMaxIdle, counted
// from the last response written, unless requests are unanswered; once a
// byte has come, the rest of the prefix must follow within
// FrameReadTimeout.
func (c *conn) readSize(br *bufio.Reader) (int32, error) {
	var sizeBuf [4]byte
	idle := c.s.cfg.ConnectionsMaxIdle
	_ = c.nc.SetReadDeadline(time.Now().Add(idle))
	for n := 0; n < 4; {
		m, err := br.Read(sizeBuf[n:])
		if m > 0 && n == 0 {
			_ = c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.FrameReadTimeout))
		}
		n += m
		if err == nil {
			continue
		}
		var ne net.Error
		if n > 0 || !errors.As(err, &ne) || !ne.Timeout() {
			c.dropReason(err)
			return 0, err
		}
		// unanswered before lastWrite (the writer stores them in the other
		// order): seeing no request unanswered guarantees seeing the write
		// of the last answer.
		unanswered := c.unanswered.Load()
		last := time.Unix(0, c.lastWrite.Load())
		switch {
		case unanswered > 0:
			_ = c.nc.SetReadDeadline(time.Now().Add(idle))
		case time.Since(last) < idle:
			_ = c.nc.SetReadDeadline(last.Add(idle))
		default:
			c.s.metrics.requestsRejected.WithLabelValues("idle").Inc()
			return 0, errIdle
		}
	}
	return int32(binary.BigEndian.Uint32(sizeBuf[:])), nil
}

// dropReason counts a connection dropped because a frame did not arrive in
// time.
func (c *conn) dropReason(err error) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.s.metrics.requestsRejected.WithLabelValues("slow").Inc()
	}
}

// parse decodes the header and body of one request. It returns the
// handler to run, or a nil handler with p.resp already set (the
// UNSUPPORTED_VERSION answer to ApiVersions), or an error for a request the
// connection cannot survive (unknown key or version, bad encoding).
func (c *conn) parse(buf []byte) (*pending, handlerFunc, kmsg.Request, error) {
	r := kbin.Reader{Src: buf}
	var h requestHeader
	h.key = r.Int16()
	h.version = r.Int16()
	h.correlationID = r.Int32()
	h.clientID = r.NullableString()
	if !r.Ok() {
		return nil, nil, nil, errors.New("truncated request header")
	}
	if h.clientID != nil {
		c.clientID = *h.clientID
	}
	p := &pending{hdr: h, done: make(chan struct{})}
	api, ok := handlers[h.key]
	if !ok {
		return nil, nil, nil, fmt.Errorf("unsupported api key %d", h.key)
	}
	if h.version < api.minVersion || h.version > api.maxVersion {
		if h.key == apiVersionsKey {
			// KIP-511: answer with the supported range so the client can
			// retry with a version it shares with us.
			p.resp = unsupportedApiVersions()
			return p, nil, nil, nil
		}
		return nil, nil, nil, fmt.Errorf("api key %d version %d is outside %d..%d", h.key, h.version, api.minVersion, api.maxVersion)
	}
	body := r.Src
	probe := kmsg.RequestForKey(h.key)
	probe.SetVersion(h.version)
	if probe.IsFlexible() {
		// Request header v2 has tagged fields after the client ID.
		skipTags(&r)
		if !r.Ok() {
			return nil, nil, nil, errors.New("truncated request header tags")
		}
		body = r.Src
	}
	req, err := decodeRequest(h.key, h.version, body)
	if err != nil {
		return nil, nil, nil, err
	}
	return p, api.fn, req, nil
}

// decodeRequest decodes the body of a request of a served key and version.
// kmsg trusts claimed lengths, so they are checked first (prescan.go).
func decodeRequest(key, version int16, body []byte) (kmsg.Request, error) {
	if err := checkBody(key, version, body); err != nil {
		return nil, fmt.Errorf("api key %d v%d: %w", key, version, err)
	}
	req := kmsg.RequestForKey(key)
	req.SetVersion(version)
	if err := req.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("decode api key %d v%d: %w", key, version, err)
	}
	return req, nil
}

func skipTags(r *kbin.Reader) {
	for n := r.Uvarint(); n > 0 && r.Ok(); n-- {
		r.Uvarint() // tag
		r.Span(int(r.Uvarint()))
	}
}

// writeLoop writes responses in request order.
func (c *conn) writeLoop(queue <-chan *pending) {
	bw := bufio.NewWriterSize(c.nc, 64<<10)
	var buf []byte
	for p := range queue {
		select {
		case <-p.done:
		case <-c.ctx.Done():
			return
		}
		// lastWrite before unanswered: the idle check reads them in the
		// other order, so it never sees a request answered without seeing
		// the time of its answer.
		c.lastWrite.Store(time.Now().UnixNano())
		c.unanswered.Add(-1)
		if p.err != nil {
			c.log.Warn("kafka request failed; closing connection", "api_key", p.hdr.key, "version", p.hdr.version, "err", p.err)
			c.close()
			return
		}
		if p.resp == nil {
			continue
		}
		var err error
		if rr, ok := p.resp.(*rawSASLResponse); ok {
			buf = binary.BigEndian.AppendUint32(buf[:0], uint32(len(rr.token)))
			_, err = bw.Write(append(buf, rr.token...))
		} else if sr, ok := p.resp.(*splicedResponse); ok {
			var bufs net.Buffers
			if bufs, buf, err = encodeSpliced(buf[:0], p.hdr, sr); err == nil {
				if sr.size() >= spliceMin {
					// Large record sets go out with writev, from where
					// they are.
					if err = bw.Flush(); err == nil {
						_, err = bufs.WriteTo(c.nc)
					}
				} else {
					for _, b := range bufs {
						if _, err = bw.Write(b); err != nil {
							break
						}
					}
				}
			}
		} else {
			buf = encodeResponse(buf[:0], p.hdr, p.resp)
			_, err = bw.Write(buf)
		}
		if err != nil {
			c.log.Debug("kafka response not written; closing connection", "api_key", p.hdr.key, "err", err)
			c.close()
			return
		}
		if p.closeAfter {
			_ = bw.Flush()
			c.close()
			return
		}
		// Flush when no further response is ready, so pipelined answers
		// share a write.
		if len(queue) == 0 {
			if err := bw.Flush(); err != nil {
				c.close()
				return
			}
		}
	}
	_ = bw.Flush()
}

// encodeResponse frames one response: size, correlation ID, the response
// header's tagged fields when flexible (never for ApiVersions, whose
// response header is always v0), and the body.
func encodeResponse(dst []byte, h requestHeader, resp kmsg.Response) []byte {
	resp.SetVersion(h.version)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(h.correlationID))
	if resp.IsFlexible() && h.key != apiVersionsKey {
		dst = append(dst, 0) // no tagged fields
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[0:4], uint32(len(dst)-4))
	return dst
}
