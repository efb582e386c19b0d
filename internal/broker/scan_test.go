package broker

import (
	"context"
	"fmt"
	"testing"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/partlog"
)

// scanAll reads s to its end, copying what each Next returns (it is only
// valid until the next call).
func scanAll(t *testing.T, s *Scanner) []Record {
	t.Helper()
	var out []Record
	for {
		recs, err := s.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			return out
		}
		for _, r := range recs {
			out = append(out, copyRecord(r, recordBytes(r)))
		}
	}
}

// A Scanner applies read_committed as Consume does (no aborted records,
// no control records, nothing at or past the LSO), on batches it is given.
func TestScannerReadsCommitted(t *testing.T) {
	t.Parallel()
	p := &partBuilder{t: t}
	p.data(-1, false, "plain0", "plain1")
	a1 := p.data(7, true, "ABORTED2", "ABORTED3")
	p.data(9, true, "committed4")
	p.data(-1, false, "plain5")
	p.data(7, true, "ABORTED6")
	abortAt := p.marker(7, false)
	p.marker(9, true)
	p.data(7, true, "committed9")
	p.marker(7, true)
	p.data(11, false, "idempotent11")
	lso := p.data(12, true, "OPEN12")
	p.data(-1, false, "AFTERLSO13")
	aborted := []metadata.AbortedTxn{{ProducerID: 7, FirstOffset: a1, LastOffset: abortAt}}

	for _, c := range []struct {
		from, to int64
		want     string
	}{
		{0, p.next, "plain0,plain1,committed4,plain5,committed9,idempotent11"},
		{1, 6, "plain1,committed4,plain5"},
		{3, 5, "committed4"},
		{6, 9, ""},
	} {
		// The read in one piece, and cut into pieces of every few bytes
		// (a run of batches spanning cache chunks is cut anywhere).
		for _, cut := range []int{0, 1, 5, 11, 12, 13, 61, 100} {
			res := p.read(lso, aborted)
			if cut > 0 {
				all := res.Pieces[0]
				res.Pieces = nil
				for len(all) > 0 {
					n := min(cut, len(all))
					res.Pieces, all = append(res.Pieces, all[:n]), all[n:]
				}
			}
			s := &Scanner{name: "t", next: c.from, to: c.to, res: res}
			if got := values(scanAll(t, s)); got != c.want {
				t.Errorf("scan [%d, %d) in pieces of %d bytes: %s, want %s", c.from, c.to, cut, got, c.want)
			}
			s.Close()
		}
	}
}

// Through the real log, compressed and not: batches with headers, a range
// starting and ending inside batches, records intact although the scanner
// (and Consume's decoder) reuse their buffers between batches.
func TestScannerOverLog(t *testing.T) {
	t.Parallel()
	for _, codec := range []batch.Codec{batch.CodecNone, batch.CodecZstd} {
		t.Run(fmt.Sprint(codec), func(t *testing.T) {
			t.Parallel()
			testScannerOverLog(t, codec)
		})
	}
}

func testScannerOverLog(t *testing.T, codec batch.Codec) {
	ctx := context.Background()
	b := agent(t, "a", metadatatest.OpenSQLite(t), objstore.NewMemory())
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "t", Partitions: 1}, false); err != nil {
		t.Fatal(err)
	}
	const n = 3000
	opts := batch.DefaultBuildOptions()
	opts.Codec = codec
	for base := 0; base < n; base += 500 {
		var recs []Record
		for i := base; i < base+500; i++ {
			recs = append(recs, Record{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprintf("value-%d", i)),
				Headers: []batch.RecordHeader{{Key: "h", Value: []byte(fmt.Sprintf("hv-%d", i))}}})
		}
		if _, err := b.ProduceRecords(ctx, "t", 0, recs, partlog.AckDurable, opts); err != nil {
			t.Fatal(err)
		}
	}
	s, err := b.Scan(ctx, "t", 0, 250, 2750)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := scanAll(t, s)
	if len(got) != 2500 {
		t.Fatalf("scanned %d records, want 2500", len(got))
	}
	for i, r := range got {
		off := int64(250 + i)
		if r.Offset != off || string(r.Key) != fmt.Sprint(off) || string(r.Value) != fmt.Sprintf("value-%d", off) ||
			len(r.Headers) != 1 || string(r.Headers[0].Value) != fmt.Sprintf("hv-%d", off) {
			t.Fatalf("record %d: offset %d key %q value %q headers %v", i, r.Offset, r.Key, r.Value, r.Headers)
		}
	}
	// Consume keeps records across batches: their headers must not share
	// the decoder's reused slice.
	c, err := b.Consume(ctx, "t", 0, 0, n, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range c.Records {
		if len(r.Headers) != 1 || string(r.Headers[0].Value) != fmt.Sprintf("hv-%d", r.Offset) {
			t.Fatalf("consumed record %d has headers %v", r.Offset, r.Headers)
		}
	}
	if len(c.Records) < 1000 {
		t.Fatalf("consumed %d records, want several batches", len(c.Records))
	}
	if _, err := b.Scan(ctx, "nope", 0, 0, 1); err == nil {
		t.Fatal("scan of an unknown topic succeeded")
	}
}
