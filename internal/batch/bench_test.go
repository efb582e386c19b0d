package batch

import "testing"

// benchRecords is a 16 KiB batch's worth of 1 KiB records.
func benchRecords() []Record { return sizedRecords(16, 1000) }

func BenchmarkValidate(b *testing.B) {
	for _, c := range allCodecs {
		batch := mustBuild(b, benchRecords(), BuildOptions{Codec: c, ProducerID: -1})
		for _, deep := range []bool{false, true} {
			if c == CodecNone && deep {
				continue // uncompressed batches are always walked
			}
			name := c.String()
			if deep {
				name += "/deep"
			}
			b.Run(name, func(b *testing.B) {
				// Throughput is in terms of the bytes a producer sent.
				b.SetBytes(int64(len(batch)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := Validate(batch, 1<<20, deep); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkCheck is the produce path's validation: every codec walked,
// with a topic's bounds (max.message.bytes 1 MiB).
func BenchmarkCheck(b *testing.B) {
	lim := Limits{MaxBatchBytes: 1 << 20, MaxRecordsBytes: 32 << 20}
	for _, c := range allCodecs {
		batch := mustBuild(b, benchRecords(), BuildOptions{Codec: c, ProducerID: -1})
		b.Run(c.String(), func(b *testing.B) {
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := Check(batch, lim); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkBuild(b *testing.B) {
	recs := benchRecords()
	size := 0
	for _, r := range recs {
		size += len(r.Key) + len(r.Value)
	}
	for _, c := range allCodecs {
		b.Run(c.String(), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			var n int
			for b.Loop() {
				out, err := Build(recs, BuildOptions{Codec: c, ProducerID: -1})
				if err != nil {
					b.Fatal(err)
				}
				n = len(out)
			}
			b.ReportMetric(float64(n), "batch-bytes")
		})
	}
}

func BenchmarkRecords(b *testing.B) {
	for _, c := range allCodecs {
		batch := mustBuild(b, benchRecords(), BuildOptions{Codec: c, ProducerID: -1})
		b.Run(c.String(), func(b *testing.B) {
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := Records(batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
