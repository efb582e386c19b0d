package partlog

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/batch"
)

// An index entry key compaction left without records is an empty run
// (length 0) in the object it wrote; DecodeSegment, the check of a whole
// object, accepts it and the object's other runs.
func TestKeyCompactedSegmentDecodes(t *testing.T) { onBackends(t, testKeyCompactedSegmentDecodes) }

func testKeyCompactedSegmentDecodes(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	cfg := keyConfig(e)
	cfg.Compaction.EntryMaxBytes = 50 // an empty entry is not merged into a longer next one
	l := e.open(cfg)
	topic := e.topic("kc", 1, map[string]string{"cleanup.policy": "compact"})
	lead(t, l, topic)
	tp := tpOf(topic, 0)
	plain := batch.DefaultBuildOptions()
	now := e.clock.Now().UnixMilli()
	// One index entry [0,1] (the last batch is kept whole), then [2,4]
	// supersedes both its records.
	appendOK(t, l, tp, kbatch(t, plain, kv{key: "a", value: "1", ts: now}))
	appendOK(t, l, tp, kbatch(t, plain, kv{key: "b", value: "1", ts: now}))
	e.clock.Advance(time.Hour)
	compactOK(t, l)
	appendOK(t, l, tp, kbatch(t, plain, kv{key: "a", value: "2", ts: now}))
	appendOK(t, l, tp, kbatch(t, plain, kv{key: "b", value: "2", ts: now}))
	appendOK(t, l, tp, kbatch(t, plain, kv{key: "z", value: "last", ts: now}))
	e.clock.Advance(time.Hour)
	if st := compactOK(t, l); st.RecordsRemoved != 2 {
		t.Fatalf("stats %+v, want a=1 and b=1 removed", st)
	}
	if got := strings.Join(readRecords(t, l, tp, 0), ","); got != "2 a=2,3 b=2,4 z=last" {
		t.Fatalf("log %s", got)
	}
	ctx := context.Background()
	es, err := e.store.ListIndex(ctx, tp, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	empty := 0
	objects := map[string]bool{}
	for _, en := range es {
		if en.Len == 0 {
			empty++
		}
		if strings.HasSuffix(en.ObjectKey, keyCompactedSuffix) {
			objects[en.ObjectKey] = true
		}
	}
	if empty == 0 || len(objects) == 0 {
		t.Fatalf("no empty entry in a key-compacted object: %+v", es)
	}
	for key := range objects {
		data, err := e.bucket.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		_, runs, err := DecodeSegment(data)
		if err != nil {
			t.Fatalf("object %s: %v", key, err)
		}
		lens := 0
		for _, r := range runs {
			if r.Len == 0 {
				lens++
				if r.Records != 0 {
					t.Fatalf("empty run with %d records: %+v", r.Records, r)
				}
			}
		}
		if lens == 0 {
			t.Fatalf("object %s: no empty run in %+v", key, runs)
		}
	}
}
