package grpcapi

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	grpcmd "google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/streamhouse/streamhouse/internal/broker"
	pb "github.com/streamhouse/streamhouse/proto/streamhousepb"
)

// Forwarding of transaction calls. A gRPC client behind a load balancer
// cannot choose the agent that coordinates its transactional ID, so an
// agent that meets "not the coordinator" (Kafka's NOT_COORDINATOR) in
// InitProducer with a transactional_id, BeginTransaction,
// CommitTransaction, AbortTransaction or a ProduceBatch with a
// transaction_id sends the whole call to the coordinator (the live agent
// leading the ID's slot) at its advertised gRPC address
// (GRPC_ADVERTISED_ADDR, from the agent registry) and answers with the
// coordinator's answer. The caller's metadata and
// deadline go with it (ForwardTimeout when it has none); with logins on,
// the call is authorized here as its caller and goes under this agent's
// own login, which may do anything, proved by an agent token good for
// this one call at that coordinator (auth/agenttoken.go), never the
// agent's password. One hop only: a
// forwarded call carries forwardedKey, and an agent receiving one never
// forwards it again, so a coordinator that lost the slot meanwhile answers
// Unavailable, as does an agent that finds no live coordinator with a gRPC
// address. A forwarded ProduceBatch is added to the transaction at the
// coordinator, which appends it locally or forwards it to the partition's
// leader like any produce.

// forwardedKey marks a call forwarded by another agent.
const forwardedKey = "streamhouse-forwarded"

// notCoordinatorError answers a transaction call on an agent that does not
// coordinate its transactional ID: Unavailable to the client, the cue to
// forward the call.
type notCoordinatorError struct {
	id string // the transactional ID
	st *status.Status
}

func (e *notCoordinatorError) Error() string              { return e.st.Err().Error() }
func (e *notCoordinatorError) GRPCStatus() *status.Status { return e.st }

// coordStatus is toStatus for an error of the transaction coordinator
// about the transactional ID id.
func (s *Server) coordStatus(method, id string, err error) error {
	st := s.toStatus(method, err)
	if errors.Is(err, kerr.NotCoordinator) || errors.Is(err, broker.ErrNotCoordinator) {
		return &notCoordinatorError{id: id, st: status.Convert(st)}
	}
	return st
}

// forwardTxn runs a transaction call here and, when this agent does not
// coordinate its transactional ID and the call was not forwarded to it,
// once more at the coordinator.
func forwardTxn[Req, Resp any](s *Server, ctx context.Context, method string, req Req,
	local func(context.Context, Req) (Resp, error),
	remote func(pb.StreamHouseClient, context.Context, Req, ...grpc.CallOption) (Resp, error),
) (Resp, error) {
	resp, err := local(ctx, req)
	var nc *notCoordinatorError
	if !errors.As(err, &nc) || isForwarded(ctx) {
		return resp, err
	}
	coord, addr, conn := s.coordinatorConn(ctx, nc.id)
	if conn == nil {
		return resp, err
	}
	login, lerr := s.forwardLogin(ctx, coord, method)
	if lerr != nil {
		s.log.Debug("cannot make the agent token of a forwarded call", "method", method, "coordinator", coord, "err", lerr)
		return resp, err
	}
	fctx, cancel := forwardContext(ctx, login)
	defer cancel()
	out, ferr := remote(pb.NewStreamHouseClient(conn), fctx, req)
	if ferr != nil {
		st := status.Convert(ferr)
		code := st.Code()
		if (code == codes.Canceled || code == codes.DeadlineExceeded) && ctx.Err() == nil {
			// The hop failed, not the caller: its connection was
			// closed (pruned, or this agent stopping) or the
			// coordinator took too long. The outcome is unknown and
			// the call is retriable, as for a coordinator that is
			// not there.
			code = codes.Unavailable
		}
		s.log.Debug("forwarded transaction call failed", "method", method, "coordinator", coord, "addr", addr, "code", st.Code().String())
		return out, status.Errorf(code, "forwarded to the coordinator %s at %s: %s", coord, addr, st.Message())
	}
	return out, nil
}

// forwardLogin is the authorization metadata of a call to method that
// this agent forwards to the agent coord: with logins on, an agent token
// good for that call at coord only (auth.Authenticator.AgentToken: the
// agent's password never travels); "" keeps the caller's metadata (logins
// off, or no agent login).
func (s *Server) forwardLogin(ctx context.Context, coord, method string) (string, error) {
	if !s.auth.Enabled() || !s.auth.HasAgentLogin() {
		return "", nil
	}
	return s.auth.AgentToken(ctx, coord, "/"+ServiceName+"/"+method)
}

// coordinatorConn returns the connection to the live agent other than this
// one that coordinates the transactional ID id, with its ID and address;
// a nil connection when there is none to forward to (no live coordinator
// elsewhere, or it has no gRPC address).
func (s *Server) coordinatorConn(ctx context.Context, id string) (coord, addr string, conn *grpc.ClientConn) {
	agent, live, ok, err := s.b.TxnCoordinatorAgent(ctx, id)
	if err != nil {
		s.log.Debug("no coordinator to forward to", "transactional_id", id, "err", err)
		return "", "", nil
	}
	if !ok {
		return "", "", nil
	}
	addrs := make(map[string]bool, len(live))
	for _, a := range live {
		if a.GRPCAddr != "" {
			addrs[a.GRPCAddr] = true
		}
	}
	s.peers.prune(addrs)
	if agent.GRPCAddr == "" {
		return "", "", nil
	}
	conn, err = s.peers.conn(agent.GRPCAddr)
	if err != nil {
		s.log.Debug("no connection to the coordinator", "transactional_id", id, "coordinator", agent.ID, "err", err)
		return "", "", nil
	}
	return agent.ID, agent.GRPCAddr, conn
}

// isForwarded reports whether the incoming call was forwarded by another
// agent.
func isForwarded(ctx context.Context) bool {
	md, _ := grpcmd.FromIncomingContext(ctx)
	return len(md.Get(forwardedKey)) > 0
}

// forwardContext is the context of a forwarded call: ctx (its deadline
// and cancellation; ForwardTimeout when it has no deadline) with the
// caller's metadata, less what gRPC sets itself, and forwardedKey. With
// login set (logins on) the call goes under this agent's own login
// instead of the caller's: the caller was authorized here, and may have
// no password to pass on (a client certificate).
func forwardContext(ctx context.Context, login string) (context.Context, context.CancelFunc) {
	in, _ := grpcmd.FromIncomingContext(ctx)
	out := make(grpcmd.MD, len(in)+1)
	for k, vs := range in {
		switch {
		case strings.HasPrefix(k, ":"), strings.HasPrefix(k, "grpc-"),
			k == "content-type", k == "user-agent", k == "te":
			continue
		}
		out[k] = vs
	}
	out.Set(forwardedKey, "1")
	if login != "" {
		out.Set("authorization", login)
	}
	ctx = grpcmd.NewOutgoingContext(ctx, out)
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, broker.ForwardTimeout)
}

// peers keeps one client connection per agent gRPC address.
type peers struct {
	creds  credentials.TransportCredentials
	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
	closed bool
}

// conn returns the connection to addr, made on first use (gRPC connects
// lazily and reconnects by itself).
func (p *peers) conn(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, broker.ErrClosed
	}
	if c := p.conns[addr]; c != nil {
		return c, nil
	}
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(p.creds))
	if err != nil {
		return nil, err
	}
	if p.conns == nil {
		p.conns = make(map[string]*grpc.ClientConn)
	}
	p.conns[addr] = c
	return c, nil
}

// peerCredentials are the transport credentials of connections to other
// agents: plaintext without cfg, else TLS with the configuration cfg gives
// at each handshake (certificates reload).
func peerCredentials(cfg func() *tls.Config) credentials.TransportCredentials {
	if cfg == nil {
		return insecure.NewCredentials()
	}
	return reloadingTLS{TransportCredentials: credentials.NewTLS(cfg()), cfg: cfg}
}

// reloadingTLS is client TLS credentials that take a fresh configuration
// for every connection.
type reloadingTLS struct {
	credentials.TransportCredentials
	cfg func() *tls.Config
}

func (c reloadingTLS) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return credentials.NewTLS(c.cfg()).ClientHandshake(ctx, authority, raw)
}

func (c reloadingTLS) Clone() credentials.TransportCredentials { return c }

// prune closes the connections to addresses no live agent has any more.
func (p *peers) prune(live map[string]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, c := range p.conns {
		if !live[addr] {
			_ = c.Close()
			delete(p.conns, addr)
		}
	}
}

// close closes every connection; later forwards find none.
func (p *peers) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}
