package objstoretest

// This file connects tests to a real S3-compatible server (versitygw or
// MinIO, started by scripts/services.sh), one fresh bucket per test.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamhouse/streamhouse/internal/objstore"
)

// S3Env is a real S3-compatible server to test against.
type S3Env struct{ Endpoint, AccessKey, SecretKey string }

// ReadS3Env reads STREAMHOUSE_TEST_S3_*; without an endpoint the test is
// skipped, unless STREAMHOUSE_REQUIRE_SERVICES=1 (CI), where a skip would
// hide that the S3 backend went untested.
func ReadS3Env(t testing.TB) S3Env {
	t.Helper()
	env := S3Env{
		Endpoint:  os.Getenv("STREAMHOUSE_TEST_S3_ENDPOINT"),
		AccessKey: os.Getenv("STREAMHOUSE_TEST_S3_ACCESS_KEY"),
		SecretKey: os.Getenv("STREAMHOUSE_TEST_S3_SECRET_KEY"),
	}
	if env.Endpoint == "" {
		const msg = "STREAMHOUSE_TEST_S3_ENDPOINT is not set (source /tmp/streamhouse-services/env or run scripts/services.sh start)"
		if os.Getenv("STREAMHOUSE_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg + " and STREAMHOUSE_REQUIRE_SERVICES=1")
		}
		t.Skip(msg)
	}
	return env
}

var unsafeBucketChars = regexp.MustCompile(`[^a-z0-9]+`)

// BucketName derives a fresh bucket name from the test name: lowercase
// letters, digits and dashes, at most 63 characters, unique per call.
func BucketName(t testing.TB) string {
	name := strings.Trim(unsafeBucketChars.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	suffix := fmt.Sprintf("%08x", rand.Uint32())
	const maxLen = 63 - 1 - 8 - 3 // "-" + suffix, "sh-" prefix
	if len(name) > maxLen {
		name = strings.TrimRight(name[len(name)-maxLen:], "-") // the end names the subtest
	}
	return strings.ReplaceAll("sh-"+strings.Trim(name, "-")+"-"+suffix, "--", "-")
}

// NewS3 connects to a freshly created bucket that is emptied and
// removed when the test ends.
func NewS3(t testing.TB, env S3Env, tweak func(*objstore.S3Config)) *objstore.S3 {
	t.Helper()
	cfg := objstore.S3Config{
		Bucket:       BucketName(t),
		Endpoint:     env.Endpoint,
		AccessKey:    env.AccessKey,
		SecretKey:    env.SecretKey,
		Throttle:     true,
		CreateBucket: true,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := objstore.NewS3(ctx, cfg)
	if err != nil {
		t.Fatalf("NewS3(bucket %s): %v", cfg.Bucket, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := removeBucket(ctx, s, cfg.Bucket); err != nil {
			t.Logf("remove test bucket %s: %v", cfg.Bucket, err)
		}
		s.Close()
	})
	return s
}

func removeBucket(ctx context.Context, s *objstore.S3, bucket string) error {
	var keys []string
	if err := s.List(ctx, "", func(info objstore.ObjectInfo) error {
		keys = append(keys, info.Key)
		return nil
	}); err != nil {
		return err
	}
	var errs []error
	for _, k := range keys {
		errs = append(errs, s.Delete(ctx, k))
	}
	_, err := s.Client().DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)})
	return errors.Join(append(errs, err)...)
}

// S3 returns a fresh bucket on the test S3 server (see ReadS3Env).
func S3(t testing.TB, tweak func(*objstore.S3Config)) *objstore.S3 {
	t.Helper()
	return NewS3(t, ReadS3Env(t), tweak)
}
