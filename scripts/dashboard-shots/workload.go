package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/streamhouse/streamhouse/internal/objstore"
	pb "github.com/streamhouse/streamhouse/proto/streamhousepb"
)

// grpcCmd produces one record and reads a few back over gRPC every
// -every until -duration has passed: the gRPC panels' traffic (streamctl
// speaks REST and Kafka only).
func grpcCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("grpc", flag.ExitOnError)
	addr := fs.String("addr", "", "gRPC listener host:port (required)")
	topic := fs.String("topic", "", "topic (required)")
	every := fs.Duration("every", 2*time.Second, "time between rounds")
	duration := fs.Duration("duration", time.Minute, "how long to go on")
	_ = fs.Parse(args)
	if *addr == "" || *topic == "" || *every <= 0 || *duration <= 0 {
		return errors.New("-addr and -topic are required; -every and -duration must be positive")
	}
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("gRPC client for %s: %w", *addr, err)
	}
	defer conn.Close()
	c := pb.NewStreamHouseClient(conn)
	// Rounds start until the duration has passed; the last one ends
	// normally (a deadline on the calls would fail it half way).
	end := time.Now().Add(*duration)
	tick := time.NewTicker(*every)
	defer tick.Stop()
	for n := 0; time.Now().Before(end); n++ {
		callCtx, callCancel := context.WithTimeout(ctx, 30*time.Second)
		p := uint32(n % 3)
		_, err := c.Produce(callCtx, &pb.ProduceRequest{Topic: *topic, Partition: p, Value: fmt.Appendf(nil, "grpc-%d", n)})
		if err == nil {
			_, err = c.Consume(callCtx, &pb.ConsumeRequest{Topic: *topic, Partition: p, MaxRecords: 10})
		}
		callCancel()
		if err != nil {
			return fmt.Errorf("round %d on %s: %w", n, *topic, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// bucketCmd creates the S3 bucket the server is started on (the server
// expects it to exist), with the server's own S3 client.
func bucketCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bucket", flag.ExitOnError)
	var cfg objstore.S3Config
	fs.StringVar(&cfg.Endpoint, "endpoint", "", "S3 endpoint URL (required)")
	fs.StringVar(&cfg.Bucket, "bucket", "", "bucket name (required)")
	fs.StringVar(&cfg.AccessKey, "access-key", "", "access key")
	fs.StringVar(&cfg.SecretKey, "secret-key", "", "secret key")
	_ = fs.Parse(args)
	if cfg.Endpoint == "" || cfg.Bucket == "" {
		return errors.New("-endpoint and -bucket are required")
	}
	cfg.CreateBucket = true
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	s, err := objstore.NewS3(ctx, cfg)
	if err != nil {
		return fmt.Errorf("create bucket %s at %s: %w", cfg.Bucket, cfg.Endpoint, err)
	}
	return s.Close()
}
