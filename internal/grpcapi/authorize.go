package grpcapi

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/authz"
	pb "github.com/streamhouse/streamhouse/proto/streamhousepb"
)

// Authorization (Config.ACL; docs/security.md, "REST, gRPC, schema
// registry and SQL"). Once a call is authenticated (auth.go), its request
// is checked against what its Kafka equivalent needs, before the method
// runs, so an unauthorized topic answers PermissionDenied whether it
// exists or not:
//
//	CreateTopic                      CREATE cluster, or CREATE topic
//	GetTopic                         DESCRIBE topic
//	ListTopics                       a login; lists the topics the caller may DESCRIBE
//	DeleteTopic                      DELETE topic
//	Produce, ProduceBatch            WRITE topic; with transaction_id also WRITE transactional id
//	Consume, Subscribe               READ topic
//	CommitOffset                     READ group and READ topic (OffsetCommit)
//	GetOffset                        DESCRIBE group and DESCRIBE topic (OffsetFetch)
//	InitProducer                     with transactional_id: WRITE transactional id;
//	                                 else IDEMPOTENT_WRITE cluster or WRITE on some topic
//	BeginTransaction, Commit/AbortTransaction
//	                                 WRITE transactional id (of the producer / the transaction_id)
//	Heartbeat                        DESCRIBE transactional id for a transactional producer,
//	                                 else as InitProducer without one
//
// Reflection needs a login only; the health service is open. A call
// another agent forwards (forward.go) was authorized there, as its
// original caller, and arrives with that agent's own login, which may do
// anything.

// authorizeCall checks the request of a StreamHouse method; other
// services' calls need a login only.
func (s *Server) authorizeCall(ctx context.Context, fullMethod string, req any) error {
	if openMethod(fullMethod) {
		return nil
	}
	var err error
	if strings.HasPrefix(fullMethod, "/"+ServiceName+"/") {
		err = s.need(ctx, req)
	} else {
		err = s.acl.Require(ctx)
	}
	return authStatus(err)
}

// need is the table above.
func (s *Server) need(ctx context.Context, req any) error {
	c := s.acl
	topic := func(op acl.Operation, name string) authz.Perm { return authz.Need(op, acl.Topic(name)) }
	switch r := req.(type) {
	case *pb.CreateTopicRequest:
		return c.RequireAny(ctx, authz.Need(acl.OpCreate, acl.Cluster()), topic(acl.OpCreate, r.GetName()))
	case *pb.GetTopicRequest:
		return c.Require(ctx, topic(acl.OpDescribe, r.GetName()))
	case *pb.ListTopicsRequest:
		return c.Require(ctx)
	case *pb.DeleteTopicRequest:
		return c.Require(ctx, topic(acl.OpDelete, r.GetName()))
	case *pb.ProduceRequest:
		return c.Require(ctx, topic(acl.OpWrite, r.GetTopic()))
	case *pb.ProduceBatchRequest:
		perms := []authz.Perm{topic(acl.OpWrite, r.GetTopic())}
		if r.GetTransactionId() != "" {
			// A malformed transaction_id is refused by the method
			// before anything happens.
			if tok, err := txnTokenArg(r.GetTransactionId()); err == nil {
				perms = append(perms, authz.Need(acl.OpWrite, acl.TransactionalID(tok.id)))
			}
		}
		return c.Require(ctx, perms...)
	case *pb.ConsumeRequest:
		return c.Require(ctx, topic(acl.OpRead, r.GetTopic()))
	case *pb.SubscribeRequest:
		return c.Require(ctx, topic(acl.OpRead, r.GetTopic()))
	case *pb.CommitOffsetRequest:
		return c.Require(ctx, authz.Need(acl.OpRead, acl.Group(r.GetConsumerGroup())), topic(acl.OpRead, r.GetTopic()))
	case *pb.GetOffsetRequest:
		return c.Require(ctx, authz.Need(acl.OpDescribe, acl.Group(r.GetConsumerGroup())), topic(acl.OpDescribe, r.GetTopic()))
	case *pb.InitProducerRequest:
		if id := r.GetTransactionalId(); id != "" {
			return c.Require(ctx, authz.Need(acl.OpWrite, acl.TransactionalID(id)))
		}
		return s.idempotentWriter(ctx)
	case *pb.BeginTransactionRequest:
		return s.needProducerTxn(ctx, r.GetProducerId(), acl.OpWrite)
	case *pb.CommitTransactionRequest:
		return needTxnToken(ctx, c, r.GetTransactionId())
	case *pb.AbortTransactionRequest:
		return needTxnToken(ctx, c, r.GetTransactionId())
	case *pb.HeartbeatRequest:
		if r.GetTransactionId() != "" {
			if tok, err := txnTokenArg(r.GetTransactionId()); err == nil {
				return c.Require(ctx, authz.Need(acl.OpDescribe, acl.TransactionalID(tok.id)))
			}
			return c.Require(ctx) // malformed: InvalidArgument from the method
		}
		return s.needProducerTxn(ctx, r.GetProducerId(), acl.OpDescribe)
	}
	// A method this table does not know is refused: fail closed.
	if err := c.Require(ctx); err != nil || !c.Enforcing() {
		return err
	}
	return status.Errorf(codes.PermissionDenied, "no authorization rule for %T", req)
}

// idempotentWriter is Kafka's InitProducerId without a transactional ID:
// IDEMPOTENT_WRITE on the cluster, or WRITE on some topic (Kafka 3.0+).
func (s *Server) idempotentWriter(ctx context.Context) error {
	if err := s.acl.Require(ctx); err != nil {
		return err
	}
	if s.acl.MayAny(ctx, acl.OpWrite, acl.ResourceTopic) {
		return nil
	}
	return s.acl.Require(ctx, authz.Need(acl.OpIdempotentWrite, acl.Cluster()))
}

// needProducerTxn asks op on the transactional ID of producer producerID,
// or, for a producer that has none, what an idempotent producer needs. A
// malformed producer_id is the method's InvalidArgument.
func (s *Server) needProducerTxn(ctx context.Context, producerID string, op acl.Operation) error {
	if err := s.acl.Require(ctx); err != nil || !s.acl.Enforcing() {
		return err
	}
	pid, err := producerIDArg(producerID)
	if err != nil {
		return nil
	}
	t, found, err := s.b.TxnOfProducer(ctx, pid)
	if err != nil {
		return s.toStatus("authorize", err)
	}
	if !found {
		return s.idempotentWriter(ctx)
	}
	return s.acl.Require(ctx, authz.NeedUnnamed(op, acl.TransactionalID(t.TransactionalID)))
}

// needTxnToken asks WRITE on the transactional ID of a transaction_id (a
// malformed one is the method's InvalidArgument).
func needTxnToken(ctx context.Context, c *authz.Checker, transactionID string) error {
	tok, err := txnTokenArg(transactionID)
	if err != nil {
		return c.Require(ctx)
	}
	return c.Require(ctx, authz.Need(acl.OpWrite, acl.TransactionalID(tok.id)))
}

// authStatus turns a refusal into its status: Unauthenticated or
// PermissionDenied.
func authStatus(err error) error {
	var denied *authz.DeniedError
	var ended *authz.LoginEndedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ended):
		return status.Error(codes.Unauthenticated, ended.Error())
	case errors.Is(err, authz.ErrUnauthenticated):
		return status.Error(codes.Unauthenticated, "authentication required: send metadata authorization: Basic base64(user:password)")
	case errors.As(err, &denied):
		return status.Error(codes.PermissionDenied, denied.Error())
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.Internal, err.Error())
}

// authorizingStream checks a stream's first request message (Subscribe's
// only one) before the method sees it.
type authorizingStream struct {
	grpc.ServerStream
	ctx     context.Context
	s       *Server
	method  string
	checked bool
}

func (a *authorizingStream) Context() context.Context { return a.ctx }

func (a *authorizingStream) RecvMsg(m any) error {
	if err := a.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if !a.checked {
		a.checked = true
		return a.s.authorizeCall(a.ctx, a.method, m)
	}
	return nil
}
