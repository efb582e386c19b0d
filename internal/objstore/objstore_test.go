// This file runs the shared acceptance suite (objstoretest) against every
// backend and wrapper, and holds the helpers that connect to a real
// S3-compatible server.

package objstore_test

import (
	"testing"

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
	env := objstoretest.ReadS3Env(t)
	objstoretest.Run(t, func(t *testing.T) objstore.Bucket {
		return objstoretest.NewS3(t, env, func(c *objstore.S3Config) {
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
