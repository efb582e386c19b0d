// Benchmarks of the local folder and S3 backends. The local ones write to
// b.TempDir() unless STREAMHOUSE_BENCH_DIR names a folder on the disk to
// measure (a tmpfs /tmp would make fsync free and the numbers meaningless).

package objstore_test

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/objstore/objstoretest"
)

var benchSizes = []struct {
	name string
	size int
}{
	{"80KiB", 80 << 10},
	{"1MiB", 1 << 20},
	{"16MiB", 16 << 20},
}

func benchDir(b *testing.B) string {
	if dir := os.Getenv("STREAMHOUSE_BENCH_DIR"); dir != "" {
		d, err := os.MkdirTemp(dir, "objstore-bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return b.TempDir()
}

// BenchmarkLocalPut measures a durable Put: write, fdatasync, rename,
// directory fsync. Each object is deleted (untimed) after the next Put so
// the disk does not fill.
func BenchmarkLocalPut(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			l := newLocal(b, benchDir(b))
			data := objstoretest.Data(1, sz.size)
			ctx := b.Context()
			b.SetBytes(int64(sz.size))
			b.ResetTimer()
			for i := range b.N {
				if err := l.Put(ctx, fmt.Sprintf("bench/%08d", i), data); err != nil {
					b.Fatal(err)
				}
				if i > 0 {
					b.StopTimer()
					l.Delete(ctx, fmt.Sprintf("bench/%08d", i-1))
					b.StartTimer()
				}
			}
		})
	}
}

// BenchmarkLocalPutParallel measures durable Puts of 1 MiB from 4
// goroutines, as when several segment uploads are in flight.
func BenchmarkLocalPutParallel(b *testing.B) {
	l := newLocal(b, benchDir(b))
	data := objstoretest.Data(1, 1<<20)
	ctx := b.Context()
	b.SetBytes(int64(len(data)))
	b.SetParallelism(4) // × GOMAXPROCS goroutines
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			key := fmt.Sprintf("bench/%08d", next.Add(1))
			if err := l.Put(ctx, key, data); err != nil {
				b.Error(err)
				return
			}
			l.Delete(ctx, key)
		}
	})
}

// BenchmarkLocalGetRange reads ranges from a 16 MiB object (page cache hot).
func BenchmarkLocalGetRange(b *testing.B) {
	l := newLocal(b, benchDir(b))
	const objSize = 16 << 20
	ctx := b.Context()
	if err := l.Put(ctx, "obj", objstoretest.Data(1, objSize)); err != nil {
		b.Fatal(err)
	}
	for _, n := range []int64{4 << 10, 64 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("%dKiB", n>>10), func(b *testing.B) {
			b.SetBytes(n)
			off := int64(0)
			for b.Loop() {
				if _, err := l.GetRange(ctx, "obj", off, n); err != nil {
					b.Fatal(err)
				}
				off = (off + 7*n + 4096) % (objSize - n)
			}
		})
	}
}

// BenchmarkS3Put measures Put latency against the test S3 server (ns/op is
// the latency of one Put). "multipart" uses the default 8 MiB threshold and
// part size (16 MiB = two parts in parallel); "single" raises the threshold
// so 16 MiB is one PutObject, to compare the two on the server at hand.
func BenchmarkS3Put(b *testing.B) {
	env := objstoretest.ReadS3Env(b)
	clients := []struct {
		name string
		s    *objstore.S3
	}{
		{"multipart", objstoretest.NewS3(b, env, nil)},
		{"single", objstoretest.NewS3(b, env, func(c *objstore.S3Config) { c.MultipartThreshold = 1 << 30 })},
	}
	sizes := append([]struct {
		name string
		size int
	}{{"4KiB", 4 << 10}}, benchSizes...)
	for _, c := range clients {
		for _, sz := range sizes {
			if c.name == "single" && sz.size < 8<<20 {
				continue // identical to multipart below the threshold
			}
			b.Run(c.name+"/"+sz.name, func(b *testing.B) {
				data := objstoretest.Data(1, sz.size)
				ctx := b.Context()
				b.SetBytes(int64(sz.size))
				b.ResetTimer()
				for i := range b.N {
					if err := c.s.Put(ctx, fmt.Sprintf("bench/%s/%08d", sz.name, i), data); err != nil {
						b.Fatal(err)
					}
					if i > 0 {
						b.StopTimer()
						c.s.Delete(ctx, fmt.Sprintf("bench/%s/%08d", sz.name, i-1))
						b.StartTimer()
					}
				}
			})
		}
	}
}

// BenchmarkS3GetRange reads 64 KiB ranges from a 16 MiB object.
func BenchmarkS3GetRange(b *testing.B) {
	env := objstoretest.ReadS3Env(b)
	s := objstoretest.NewS3(b, env, nil)
	const objSize, n = 16 << 20, 64 << 10
	ctx := b.Context()
	if err := s.Put(ctx, "obj", objstoretest.Data(1, objSize)); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(n)
	off := int64(0)
	for b.Loop() {
		if _, err := s.GetRange(ctx, "obj", off, n); err != nil {
			b.Fatal(err)
		}
		off = (off + 7*n + 4096) % (objSize - n)
	}
}
