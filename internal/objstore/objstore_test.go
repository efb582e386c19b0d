// This file runs the shared acceptance suite (objstoretest) against every
// backend and wrapper, and holds the helpers that connect to a real
// S3-compatible server.

package objstore_test

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
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/objstore/objstoretest"
)

func TestMemory(t *testing.T) {
	t.Parallel()
	objstoretest.Run(t, func(t *testing.T) objstore.Bucket { return objstore.NewMemory() })
}

func TestLocal(t *testing.T) {
	t.Parallel()
	objstoretest.Run(t, func(t *testing.T) objstore.Bucket { return newLocal(t, t.TempDir()) })
}

func TestFaultyNoFaults(t *testing.T) {
	t.Parallel()
	objstoretest.Run(t, func(t *testing.T) objstore.Bucket { return objstore.NewFaulty(objstore.NewMemory()) })
}

func TestWithMetricsSuite(t *testing.T) {
	t.Parallel()
	objstoretest.Run(t, func(t *testing.T) objstore.Bucket {
		return objstore.WithMetrics(objstore.NewMemory(), prometheus.NewRegistry(), "memory")
	})
}

func TestCountingSuite(t *testing.T) {
	t.Parallel()
	objstoretest.Run(t, func(t *testing.T) objstore.Bucket { return objstore.NewCounting(objstore.NewMemory()) })
}

func TestS3(t *testing.T) {
	t.Parallel()
	env := s3Env(t)
	objstoretest.Run(t, func(t *testing.T) objstore.Bucket {
		return newTestS3(t, env, func(c *objstore.S3Config) {
			// Small threshold and parts so the suite's large object is a
			// four-part multipart upload.
			c.MultipartThreshold = objstore.MinPartSize
			c.MultipartPartSize = objstore.MinPartSize
		})
	})
}

func newLocal(t testing.TB, root string) *objstore.Local {
	t.Helper()
	l, err := objstore.NewLocal(root)
	if err != nil {
		t.Fatalf("NewLocal(%s): %v", root, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// s3TestEnv is a real S3-compatible server to test against.
type s3TestEnv struct{ endpoint, accessKey, secretKey string }

// s3Env reads STREAMHOUSE_TEST_S3_*; without an endpoint the test is
// skipped, unless STREAMHOUSE_REQUIRE_SERVICES=1 (CI), where a skip would
// hide that the S3 backend went untested.
func s3Env(t testing.TB) s3TestEnv {
	t.Helper()
	env := s3TestEnv{
		endpoint:  os.Getenv("STREAMHOUSE_TEST_S3_ENDPOINT"),
		accessKey: os.Getenv("STREAMHOUSE_TEST_S3_ACCESS_KEY"),
		secretKey: os.Getenv("STREAMHOUSE_TEST_S3_SECRET_KEY"),
	}
	if env.endpoint == "" {
		const msg = "STREAMHOUSE_TEST_S3_ENDPOINT is not set (source /tmp/streamhouse-services/env or run scripts/services.sh start)"
		if os.Getenv("STREAMHOUSE_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg + " and STREAMHOUSE_REQUIRE_SERVICES=1")
		}
		t.Skip(msg)
	}
	return env
}

var unsafeBucketChars = regexp.MustCompile(`[^a-z0-9]+`)

// testBucketName derives a fresh bucket name from the test name: lowercase
// letters, digits and dashes, at most 63 characters, unique per call.
func testBucketName(t testing.TB) string {
	name := strings.Trim(unsafeBucketChars.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	suffix := fmt.Sprintf("%08x", rand.Uint32())
	const maxLen = 63 - 1 - 8 - 3 // "-" + suffix, "sh-" prefix
	if len(name) > maxLen {
		name = strings.TrimRight(name[len(name)-maxLen:], "-") // the end names the subtest
	}
	return strings.ReplaceAll("sh-"+strings.Trim(name, "-")+"-"+suffix, "--", "-")
}

// newTestS3 connects to a freshly created bucket that is emptied and
// removed when the test ends.
func newTestS3(t testing.TB, env s3TestEnv, tweak func(*objstore.S3Config)) *objstore.S3 {
	t.Helper()
	cfg := objstore.S3Config{
		Bucket:       testBucketName(t),
		Endpoint:     env.endpoint,
		AccessKey:    env.accessKey,
		SecretKey:    env.secretKey,
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
