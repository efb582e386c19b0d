package partlog

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

func sampleSegment(t testing.TB) ([]byte, []SegmentRun) {
	t.Helper()
	p1 := &partition{tp: metadata.TopicPartition{TopicID: metadata.TopicID{1}, Partition: 0}}
	p2 := &partition{tp: metadata.TopicPartition{TopicID: metadata.TopicID{2}, Partition: 5}}
	b1 := &bufPart{p: p1, base: -1, maxTs: -1}
	b1.add(mkBatch(t, "a", 3), headerOf(t, 3, 1700000000002), 10)
	b1.add(mkBatch(t, "b", 1), headerOf(t, 1, 1700000000000), 13)
	b2 := &bufPart{p: p2, base: -1, maxTs: -1}
	b2.add(mkBatch(t, "c", 2), headerOf(t, 2, 1700000000001), 0)
	return buildObject([]*bufPart{b1, b2}, 1234)
}

func TestSegmentRoundTrip(t *testing.T) {
	data, runs := sampleSegment(t)
	created, got, err := DecodeSegment(data)
	if err != nil {
		t.Fatal(err)
	}
	if created != 1234 || len(got) != 2 {
		t.Fatalf("created %d runs %d", created, len(got))
	}
	for i := range runs {
		if got[i] != runs[i] {
			t.Fatalf("run %d: %+v, want %+v", i, got[i], runs[i])
		}
	}
	if got[0].BaseOffset != 10 || got[0].LastOffset != 13 || got[0].Records != 4 || got[1].Partition != 5 {
		t.Fatalf("runs %+v", got)
	}
	// Every single-byte corruption is detected.
	for i := range data {
		bad := bytes.Clone(data)
		bad[i] ^= 0x40
		if _, _, err := DecodeSegment(bad); !errors.Is(err, ErrCorruptSegment) {
			t.Fatalf("flipping byte %d: err %v", i, err)
		}
	}
	for n := 0; n < len(data); n += 7 {
		if _, _, err := DecodeSegment(data[:n]); err == nil {
			t.Fatalf("truncated to %d bytes: no error", n)
		}
	}
}

func FuzzDecodeSegment(f *testing.F) {
	data, _ := sampleSegment(f)
	f.Add(data)
	f.Add(data[:40])
	f.Add([]byte(segmentMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, runs, err := DecodeSegment(b)
		if err != nil {
			return
		}
		for _, r := range runs {
			if r.Pos < segmentHeaderSize || r.Pos+r.Len > int64(len(b)) {
				t.Fatalf("accepted run outside the object: %+v", r)
			}
		}
	})
}

// corruptDir flips a byte in every file of dir.
func corruptDir(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 {
			continue
		}
		b[len(b)/2] ^= 0xff
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func headerOf(t testing.TB, n int, maxTs int64) batch.Header {
	return batch.Header{LastOffsetDelta: int32(n - 1), NumRecords: int32(n), MaxTimestamp: maxTs}
}
