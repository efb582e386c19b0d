package schemaregistry_test

import (
	"context"
	"testing"
	"time"

	"github.com/bufbuild/protocompile"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

const orderProto = `syntax = "proto3";
package shop;
message Order {
  string id = 1;
  int32 qty = 2;
}`

// TestKafkaProtobufRoundTrip: franz-go's serde produces Protobuf in the
// Confluent wire format (id and message index) to a validating topic, and
// the record consumes back.
func TestKafkaProtobufRoundTrip(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s.createTopic(t, "orders", true)
	ss, err := s.sr.CreateSchema(ctx, "orders-value", sr.Schema{Schema: orderProto, Type: sr.TypeProtobuf})
	if err != nil {
		t.Fatalf("CreateSchema: %v", err)
	}
	c := protocompile.Compiler{Resolver: &protocompile.SourceResolver{Accessor: protocompile.SourceAccessorFromMap(map[string]string{"order.proto": orderProto})}}
	files, err := c.Compile(ctx, "order.proto")
	if err != nil {
		t.Fatal(err)
	}
	md := files[0].Messages().ByName("Order")
	var serde sr.Serde
	serde.Register(ss.ID, &dynamicpb.Message{},
		sr.Index(0),
		sr.EncodeFn(func(v any) ([]byte, error) { return proto.Marshal(v.(proto.Message)) }),
		sr.DecodeFn(func(b []byte, v any) error { return proto.Unmarshal(b, v.(proto.Message)) }))
	msg := dynamicpb.NewMessage(md)
	msg.Set(md.Fields().ByName("id"), protoString("o-1"))
	msg.Set(md.Fields().ByName("qty"), protoInt32(3))
	v, err := serde.Encode(msg)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.kafka), kgo.ConsumeTopics("orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: v}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	fs := cl.PollFetches(ctx)
	if err := fs.Err0(); err != nil {
		t.Fatal(err)
	}
	recs := fs.Records()
	if len(recs) != 1 {
		t.Fatalf("consumed %d records", len(recs))
	}
	back := dynamicpb.NewMessage(md)
	if err := serde.Decode(recs[0].Value, back); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if !proto.Equal(back, msg) {
		t.Fatalf("consumed %v, want %v", back, msg)
	}
}

func protoString(s string) protoreflect.Value { return protoreflect.ValueOfString(s) }
func protoInt32(n int32) protoreflect.Value   { return protoreflect.ValueOfInt32(n) }
