package kafka

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
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
		Warn(string, ...any)
	}

	// ClientID of the last request (clients send the same on every request).
	clientID string

	closeOnce sync.Once

	// lastProduce is the done channel of the previous produce request's
	// order slot (00_produce.go); only readLoop touches it.
	lastProduce chan struct{}
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
}

func newConn(s *Server, nc net.Conn) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &conn{s: s, nc: nc, ctx: ctx, cancel: cancel, log: s.log.With("remote", nc.RemoteAddr().String())}
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
	queue := make(chan *pending, c.s.cfg.MaxInflightPerConn)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop(queue)
	}()
	err := c.readLoop(queue)
	close(queue)
	<-writerDone
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && c.ctx.Err() == nil {
		c.log.Warn("closing kafka connection", "client_id", c.clientID, "err", err)
	}
}

// readLoop reads requests and starts their handlers, in order.
func (c *conn) readLoop(queue chan<- *pending) error {
	br := bufio.NewReaderSize(c.nc, 64<<10)
	var sizeBuf [4]byte
	for {
		if _, err := io.ReadFull(br, sizeBuf[:]); err != nil {
			return err
		}
		size := int32(binary.BigEndian.Uint32(sizeBuf[:]))
		if size < 8 || size > c.s.cfg.MaxRequestBytes {
			return fmt.Errorf("request of %d bytes is outside 8..%d (socket.request.max.bytes)", size, c.s.cfg.MaxRequestBytes)
		}
		buf := make([]byte, size)
		if _, err := io.ReadFull(br, buf); err != nil {
			return fmt.Errorf("read request body: %w", err)
		}
		p, fn, req, err := c.parse(buf)
		if err != nil {
			return err
		}
		select {
		case queue <- p:
		case <-c.ctx.Done():
			return c.ctx.Err()
		}
		if fn == nil {
			close(p.done) // response prepared by parse
			continue
		}
		ctx := c.ctx
		if p.hdr.clientID != nil {
			ctx = context.WithValue(ctx, clientIDKey{}, *p.hdr.clientID)
		}
		// Produce requests append in arrival order (00_produce.go).
		var slot *orderSlot
		if p.hdr.key == produceKey {
			slot = newOrderSlot(c.lastProduce)
			c.lastProduce = slot.done
			ctx = withOrderSlot(ctx, slot)
		}
		go func() {
			defer close(p.done)
			defer slot.release()
			defer func() {
				if r := recover(); r != nil {
					p.err = fmt.Errorf("panic handling api key %d v%d: %v", p.hdr.key, p.hdr.version, r)
				}
			}()
			start := time.Now()
			p.resp, p.err = fn(ctx, c, req)
			c.s.metrics.observe(p.hdr.key, start, p.err)
		}()
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
	req := kmsg.RequestForKey(h.key)
	req.SetVersion(h.version)
	body := r.Src
	if req.IsFlexible() {
		// Request header v2 has tagged fields after the client ID.
		skipTags(&r)
		if !r.Ok() {
			return nil, nil, nil, errors.New("truncated request header tags")
		}
		body = r.Src
	}
	if err := req.ReadFrom(body); err != nil {
		return nil, nil, nil, fmt.Errorf("decode api key %d v%d: %w", h.key, h.version, err)
	}
	return p, api.fn, req, nil
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
		if p.err != nil {
			c.log.Warn("kafka request failed; closing connection", "api_key", p.hdr.key, "version", p.hdr.version, "err", p.err)
			c.close()
			return
		}
		if p.resp == nil {
			continue
		}
		var err error
		if sr, ok := p.resp.(*splicedResponse); ok {
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
