package dropin

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/streamhouse/streamhouse/internal/e2e"
	pb "github.com/streamhouse/streamhouse/proto/streamhousepb"
)

// REST's maxRecords and gRPC's max_records follow one rule: absent or 0
// is 100, more than 10,000 is 10,000.
func TestConsumeLimitRule(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := e2e.Start(t, dir, e2e.Local.Env(t, dir))
	if code := p.Call(http.MethodPost, "/api/v1/topics", map[string]any{"name": "many", "partitions": 1}, nil); code != http.StatusCreated {
		t.Fatalf("create topic: %d", code)
	}
	var recs []map[string]any
	for i := range 150 {
		recs = append(recs, map[string]any{"value": fmt.Sprint(i)})
	}
	if code := p.Call(http.MethodPost, "/api/v1/produce/batch", map[string]any{"topic": "many", "partition": 0, "records": recs}, nil); code != http.StatusOK {
		t.Fatalf("produce: %d", code)
	}
	for q, want := range map[string]int{"": 100, "&maxRecords=0": 100, "&maxRecords=7": 7, "&maxRecords=20000": 150} {
		var got struct {
			Records []any `json:"records"`
		}
		if code := p.Call(http.MethodGet, "/api/v1/consume?topic=many&partition=0&offset=0"+q, nil, &got); code != http.StatusOK || len(got.Records) != want {
			t.Errorf("REST consume%s: %d, %d records, want %d", q, code, len(got.Records), want)
		}
	}
	if code := p.Call(http.MethodGet, "/api/v1/consume?topic=many&maxRecords=-1", nil, nil); code != http.StatusBadRequest {
		t.Errorf("REST maxRecords=-1: %d, want 400", code)
	}
	conn, err := grpc.NewClient(p.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := pb.NewStreamHouseClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for max, want := range map[uint32]int{0: 100, 7: 7, 20000: 150} {
		res, err := c.Consume(ctx, &pb.ConsumeRequest{Topic: "many", MaxRecords: max})
		if err != nil || len(res.GetRecords()) != want {
			t.Errorf("gRPC consume max_records %d: %d records, %v; want %d", max, len(res.GetRecords()), err, want)
		}
	}
}
