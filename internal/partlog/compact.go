package partlog

// Object compaction (docs/architecture.md, "Object compaction"): the write
// path seals one small object per flush holding runs of many partitions,
// so a historical read of one partition costs one GET per flush. The agent
// leading a partition rewrites its older runs into per-partition segment
// objects, bounded by CompactionConfig.SegmentMaxBytes and SegmentMaxAge,
// and switches the index to them in one fenced metadata transaction
// (metadata.Store.ReplaceIndex). The replaced objects stay readable until
// garbage collection deletes them, a grace period after no index row
// names them any more, so a reader holding old index entries never fails
// (invariant 11). A pass reads each flush object at most once per batch
// of partitions, for every partition's runs of the batch in it
// (rewriteGroups), holds a bounded amount of them (BufferBytes), yields
// to appends in proportion to their pressure (BusyShare) and stops
// rewriting at PassMaxDuration. The write-and-switch
// step (writeSegment, after rewriteRun's reads) is what Kafka key
// compaction reuses with its own selection of batches.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/objstore"
)

// CompactionConfig configures object compaction. Zero values take the
// defaults noted.
type CompactionConfig struct {
	// Interval spaces the background passes (with jitter: each wait is
	// between half and one and a half of it). Zero or negative: no
	// background pass (Log.Compact still works).
	Interval time.Duration
	// SegmentMaxBytes bounds the record bytes of one segment object
	// compaction writes. Default 1 MiB (SEGMENT_MAX_SIZE).
	SegmentMaxBytes int64
	// SegmentMaxAge bounds the time between the seals of the first and
	// the last object a segment takes runs from. Default 10s
	// (SEGMENT_MAX_AGE_MS).
	SegmentMaxAge time.Duration
	// MinAge leaves runs whose object was sealed less than this ago alone:
	// they are what the hot tail serves and what consumers at the head
	// read. Default 5s.
	MinAge time.Duration
	// EntryMaxBytes bounds one index entry of a segment (a segment of
	// several entries has one footer run per entry), so a read of one
	// entry never loads much more than it returns. Default the read
	// chunk size (1 MiB).
	EntryMaxBytes int64
	// KeyMapBytes bounds the memory of one key compaction pass's key map
	// (keycompact.go). Default 16 MiB.
	KeyMapBytes int64
	// BufferBytes bounds the run bytes an object compaction pass holds
	// for segments not yet complete: partitions are rewritten in batches
	// whose segments in progress fit it (rewriteGroups); only a segment
	// larger than it alone is written in pieces. Default 32 MiB.
	BufferBytes int64
	// BusyShare is the share of time an object compaction pass may work
	// while appends press the agent: after each read and each segment it
	// waits up to (1/BusyShare - 1) times as long as that step took, so a
	// full-speed produce keeps most of the disk, the CPU and the metadata
	// store. The wait scales with the append pressure (appendPressure):
	// none while less than an eighth of MaxPendingBytes is pending (an
	// idle agent or a trickle of appends: compaction at full speed), the
	// whole wait from half of it on or while every upload slot is taken.
	// Default 0.25; 1 never waits.
	BusyShare float64
	// PassMaxDuration bounds the object compaction part of a pass (reads,
	// writes and waits): past it the pass leaves the segments it has not
	// written to the next pass and goes on to key compaction, so a long
	// backlog under append pressure delays neither key compaction nor
	// the pass's success (streamhouse_log_compaction_last_success_timestamp_seconds).
	// It is checked only once the pass has brought a group to its end
	// (pacer), so every pass replaces something, however short it is.
	// Default Interval, or 1 minute without one (COMPACTION_PASS_MAX_MS).
	PassMaxDuration time.Duration
}

func (c *CompactionConfig) setDefaults(chunk int64) {
	if c.SegmentMaxBytes <= 0 {
		c.SegmentMaxBytes = 1 << 20
	}
	if c.SegmentMaxAge <= 0 {
		c.SegmentMaxAge = 10 * time.Second
	}
	if c.MinAge <= 0 {
		c.MinAge = 5 * time.Second
	}
	if c.EntryMaxBytes <= 0 {
		// Entries start after the segment's header: one that size ends
		// within the first chunk, so a read of it is one chunk GET.
		c.EntryMaxBytes = max(chunk-segmentHeaderSize, 1)
	}
	if c.KeyMapBytes <= 0 {
		c.KeyMapBytes = 16 << 20
	}
	if c.BufferBytes <= 0 {
		c.BufferBytes = 32 << 20
	}
	if c.BusyShare <= 0 || c.BusyShare > 1 {
		c.BusyShare = 0.25
	}
	if c.PassMaxDuration <= 0 {
		c.PassMaxDuration = c.Interval
		if c.PassMaxDuration <= 0 {
			c.PassMaxDuration = time.Minute
		}
	}
}

// compactedSuffix ends the key of every object compaction writes. Its runs
// are never rewritten again by object compaction, which keeps the
// grouping of a partition's runs the same from one pass to the next (only
// new runs join groups), so a byte is rewritten once.
const compactedSuffix = "-c.seg"

// CompactionStats reports one compaction pass.
type CompactionStats struct {
	Segments  int   // segment objects written and switched to
	Entries   int   // index entries replaced
	Bytes     int64 // record bytes rewritten
	Conflicts int   // switches refused (fenced, index changed) or failed

	// Reads of object compaction.
	ObjectsRead int   // source objects read (each at most once a batch)
	ReadBytes   int64 // bytes read from them
	PeakBytes   int64 // most bytes held at once: runs, one read and its copies

	// Time of object compaction's reads and segment writes (Busy), and
	// what it waited after them for appends (Yielded, see BusyShare).
	Busy, Yielded time.Duration
	// Deferred counts the planned index entries the pass left for the
	// next one: past PassMaxDuration, or let go under BufferBytes.
	Deferred int

	// Key compaction (keycompact.go).
	KeyPasses      int   // partitions key-compacted
	RecordsRemoved int64 // records key compaction removed
	BytesReclaimed int64 // record bytes it removed

	// Merges of undersized key-compacted segments (keymerge.go).
	Merges         int   // segments merges wrote
	SegmentsMerged int   // segments they replaced
	MergedBytes    int64 // record bytes they copied
}

// compactor is the compaction state of a Log.
type compactor struct {
	mu sync.Mutex // one pass at a time
	// passEntries bounds the index entries one pass plans to replace
	// (maxPassEntries; tests lower it).
	passEntries int
	// resume is the partition (tp.String()) the next pass plans first:
	// the one the last pass cut short, or the one after it when that
	// pass also started with it (one partition cannot take every pass).
	// Under mu.
	resume string
	// clean is, per partition, an offset below which every index entry
	// is in a compacted segment: passes list the index from there (the
	// log start otherwise), not the whole retained log each time. A
	// compacted entry is never replaced by an uncompacted one, so the
	// offset stays true. Under mu.
	clean map[metadata.TopicPartition]int64

	keys *keyCompactor // keycompact.go
	// mergeEntries bounds the index entries one merge of a partition's
	// key-compacted prefix looks at (maxKeyPassEntries; tests lower it).
	mergeEntries int
	// noMerge turns the merging of undersized key-compacted segments off
	// (keymerge.go; the tests and the benchmark compare).
	noMerge bool

	runs      prometheus.Counter
	seconds   prometheus.Counter // added as a pass goes (mark), not only at its end
	yielded   prometheus.Counter
	deferred  prometheus.Counter
	mark      time.Time // what seconds counts up to; under mu
	objects   prometheus.Counter
	bytes     prometheus.Counter
	entries   prometheus.Counter
	conflicts *prometheus.CounterVec
}

func newCompactor(reg prometheus.Registerer) *compactor {
	c := &compactor{
		passEntries:  maxPassEntries,
		mergeEntries: maxKeyPassEntries,
		clean:        make(map[metadata.TopicPartition]int64),
		runs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_log_compaction_runs_total", Help: "Object compaction passes run.",
		}),
		seconds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_log_compaction_seconds_total", Help: "Time spent in compaction passes (object and key compaction), waits for appends included.",
		}),
		yielded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_log_compaction_yield_seconds_total", Help: "Time object compaction passes waited for the agent's appends (CompactionConfig.BusyShare).",
		}),
		deferred: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_log_compaction_deferred_entries_total", Help: "Index entries an object compaction pass planned but left for the next pass (past CompactionConfig.PassMaxDuration, or let go under BufferBytes).",
		}),
		objects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_log_compaction_objects_written_total", Help: "Per-partition segment objects written by compaction and switched to.",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_log_compaction_bytes_rewritten_total", Help: "Record batch bytes compaction rewrote into segment objects.",
		}),
		entries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_log_compaction_entries_replaced_total", Help: "Index entries compaction replaced.",
		}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamhouse_log_compaction_switch_conflicts_total",
			Help: "Index switches that did not happen, by reason (fenced: the lease moved; changed: retention or another compaction changed the entries; error: the store or the bucket failed).",
		}, []string{"reason"}),
	}
	for _, r := range compactionConflictReasons {
		c.conflicts.WithLabelValues(r) // at zero from the start (metrics.go)
	}
	reg.MustRegister(c.runs, c.seconds, c.yielded, c.deferred, c.objects, c.bytes, c.entries, c.conflicts)
	c.keys = newKeyCompactor(reg)
	return c
}

// compactLoop runs Compact every CompactionConfig.Interval, with jitter,
// until the log closes.
func (l *Log) compactLoop() {
	defer l.wg.Done()
	for {
		if !sleepCtx(l.ctx, jitter(l.cfg.Compaction.Interval)) {
			return
		}
		if _, err := l.Compact(l.ctx); err != nil && l.ctx.Err() == nil {
			l.log.Warn("object compaction", "err", err)
		} else if err == nil {
			l.metrics.compactionLastSuccess.SetToCurrentTime()
		}
	}
}

// Compact runs one object compaction pass over every partition this agent
// leads: it plans the segments (compactGroups), then rewrites them reading
// each source object once (rewriteGroups), then runs key compaction and
// merges small key-compacted segments (keymerge.go), partition by partition. A
// failure of one segment's rewrite or switch is counted and logged and
// leaves the log as it was (the new object, if written, is an orphan for
// garbage collection); the next pass tries again. The error reports what
// stopped the pass early (the context, the index unreadable).
func (l *Log) Compact(ctx context.Context) (CompactionStats, error) {
	c := l.compaction
	c.mu.Lock()
	defer c.mu.Unlock()
	c.runs.Inc()
	c.mark = time.Now()
	defer c.tick()
	l.mu.Lock()
	parts := make([]*partition, 0, len(l.partitions))
	for _, p := range l.partitions {
		parts = append(parts, p)
	}
	l.mu.Unlock()
	sort.Slice(parts, func(i, j int) bool { return parts[i].tp.String() < parts[j].tp.String() })
	var st CompactionStats
	groups, err := l.planCompaction(ctx, parts)
	if err != nil {
		return st, err
	}
	if err := l.rewriteGroups(ctx, groups, &st); err != nil {
		return st, fmt.Errorf("object compaction: %w", err)
	}
	for _, p := range parts {
		if err := l.compactKeys(ctx, p, &st); err != nil {
			return st, fmt.Errorf("key compaction of %s: %w", p.tp, err)
		}
		if err := l.mergeKeySegments(ctx, p, &st); err != nil {
			return st, fmt.Errorf("merging the key-compacted segments of %s: %w", p.tp, err)
		}
	}
	c.keys.finishPass(l.cfg.Now(), parts)
	if st.Segments > 0 || st.Conflicts > 0 {
		l.log.Info("object compaction", "segments", st.Segments, "entries_replaced", st.Entries, "bytes", st.Bytes,
			"objects_read", st.ObjectsRead, "conflicts", st.Conflicts, "busy", st.Busy, "yielded", st.Yielded)
	}
	return st, nil
}

// tick adds the pass's time since the last tick to the seconds counter.
// c.mu is held.
func (c *compactor) tick() {
	now := time.Now()
	c.seconds.Add(now.Sub(c.mark).Seconds())
	c.mark = now
}

// maxPassEntries bounds the index entries one pass plans to replace (the
// plan holds them in memory). A partition the bound cuts short is planned
// first by the next pass (compactor.resume).
const maxPassEntries = 100_000

// compactGroup is a planned segment: a dense run of p's index entries
// and, while the pass reads them, their bytes. When the pass writes its
// read part early, the rest (from start) goes on as a group.
type compactGroup struct {
	p       *partition
	old     []metadata.IndexEntry
	bodies  [][]byte // bodies[i]: old[i]'s bytes once read (until written)
	held    int64    // bytes in bodies
	start   int      // old[:start] are written (or given up)
	missing int      // entries not read yet
	// old[start:prefix] are read, prefixBytes their bytes: what can be
	// written before the rest is read.
	prefix      int
	prefixBytes int64
	done        bool // written, failed or dropped: bodies released
}

// take records old[i]'s bytes.
func (g *compactGroup) take(i int, data []byte) {
	g.bodies[i] = data
	g.missing--
	g.held += int64(len(data))
	for g.prefix < len(g.bodies) && g.bodies[g.prefix] != nil {
		g.prefixBytes += int64(len(g.bodies[g.prefix]))
		g.prefix++
	}
}

// planCompaction groups the eligible runs of each partition (parts, in
// name order) into segments, about passEntries entries at most in all
// (the last group may go over), starting with compactor.resume.
func (l *Log) planCompaction(ctx context.Context, parts []*partition) ([]*compactGroup, error) {
	c := l.compaction
	if len(parts) == 0 {
		return nil, nil
	}
	led := make(map[metadata.TopicPartition]bool, len(parts))
	for _, p := range parts {
		led[p.tp] = true
	}
	for tp := range c.clean {
		if !led[tp] {
			delete(c.clean, tp)
		}
	}
	first := sort.Search(len(parts), func(i int) bool { return parts[i].tp.String() >= c.resume }) % len(parts)
	var groups []*compactGroup
	planned := 0
	c.resume = ""
	for k := range parts {
		i := (first + k) % len(parts)
		p := parts[i]
		gs, complete, err := l.planPartition(ctx, p, c.passEntries-planned)
		if err != nil {
			return nil, fmt.Errorf("compact %s: %w", p.tp, err)
		}
		for _, g := range gs {
			planned += len(g.old)
		}
		groups = append(groups, gs...)
		if !complete {
			if k == 0 {
				i = (i + 1) % len(parts)
			}
			c.resume = parts[i].tp.String()
			break
		}
	}
	return groups, nil
}

// planPartition groups the partition's eligible runs into segments of at
// most SegmentMaxBytes spanning at most SegmentMaxAge, stopping once the
// groups hold budget entries (complete false: the partition has more).
func (l *Log) planPartition(ctx context.Context, p *partition, budget int) (groups []*compactGroup, complete bool, err error) {
	hw, logStart, _, fenced := p.committedState()
	if fenced || hw == logStart {
		return nil, true, nil
	}
	cc := l.cfg.Compaction
	cutoff := l.cfg.Now().Add(-cc.MinAge).UnixMilli()
	maxAge := cc.SegmentMaxAge.Milliseconds()
	var group []metadata.IndexEntry
	var groupBytes int64
	planned := 0
	// The entries from start up to clean are all compacted.
	start := max(logStart, l.compaction.clean[p.tp])
	clean, dirty := start, false
	defer func() { l.compaction.clean[p.tp] = clean }()
	flush := func() {
		// A single run is rewritten too: its flush object also holds
		// other partitions' runs, and stays alive while any index entry
		// names it (compacted segments never enter a group).
		if len(group) > 0 {
			groups = append(groups, &compactGroup{p: p, old: group})
			planned += len(group)
		}
		group, groupBytes = nil, 0
	}
	// open reports whether the last group may still grow: something sealed
	// from now on could join it.
	open := func() bool { return len(group) > 0 && cutoff-group[0].ObjectCreatedAt <= maxAge }
	const page = 1000
	for from := start; from < hw; {
		entries, err := l.store.ListIndex(ctx, p.tp, from, page)
		if err != nil {
			if ctx.Err() != nil {
				return nil, false, ctx.Err()
			}
			// The other partitions go on; this one waits for the next pass.
			l.log.Warn("object compaction: index unreadable", "topic", p.topicName, "partition", p.tp.Partition, "err", err)
			return nil, true, nil
		}
		for _, e := range entries {
			if e.BaseOffset >= hw || e.ObjectCreatedAt <= 0 || e.ObjectCreatedAt > cutoff {
				// Too recent (runs go in seal order).
				if !open() {
					flush()
				}
				return groups, true, nil
			}
			switch {
			case strings.HasSuffix(e.ObjectKey, compactedSuffix):
				if !dirty {
					clean = e.LastOffset + 1
				}
				flush()
				if planned >= budget {
					return groups, false, nil
				}
				continue
			case len(group) > 0 && (groupBytes+e.Len > cc.SegmentMaxBytes || e.ObjectCreatedAt-group[0].ObjectCreatedAt > maxAge):
				flush()
			}
			if planned >= budget {
				return groups, false, nil
			}
			dirty = true
			group = append(group, e)
			groupBytes += e.Len
		}
		if len(entries) < page {
			break
		}
		from = entries[len(entries)-1].LastOffset + 1
	}
	if !open() {
		flush()
	}
	return groups, true, nil
}

// errPartitionFenced stops compacting a partition whose lease moved.
var errPartitionFenced = errors.New("partition fenced")

// sourceRun is one planned index entry in its source object.
type sourceRun struct {
	g *compactGroup
	i int // index in g.old
}

func (r sourceRun) entry() metadata.IndexEntry { return r.g.old[r.i] }

// rewriteGroups writes the planned groups in batches of partitions whose
// segments in progress fit BufferBytes together (compactBatches), so
// memory stays bounded without writing segments early, smaller: a
// segment cut short is never regrouped (compactedSuffix), so early
// writes would fragment a busy agent's partitions for good. Each batch
// reads every source object it takes runs from at most once.
func (l *Log) rewriteGroups(ctx context.Context, groups []*compactGroup, st *CompactionStats) error {
	now := time.Now()
	pace := &pacer{l: l, st: st, since: now, deadline: now.Add(l.cfg.Compaction.PassMaxDuration)}
	var scratch []byte // the segments' buffer, reused (a Put keeps no reference)
	letGo := 0         // entries let go under BufferBytes (rewriteBatch)
	defer func() {
		if letGo > 0 {
			l.log.Info("object compaction: runs let go to stay within the buffer, the next pass reads them again",
				"buffer_bytes", l.cfg.Compaction.BufferBytes, "entries_deferred", letGo)
		}
	}()
	for _, b := range compactBatches(groups, l.cfg.Compaction.BufferBytes) {
		err := l.rewriteBatch(ctx, b, st, pace, &scratch, &letGo)
		if errors.Is(err, errPassTime) {
			n := 0
			for _, g := range groups {
				if !g.done {
					n += len(g.old) - g.start
				}
			}
			st.Deferred += n
			l.compaction.deferred.Add(float64(n))
			l.log.Info("object compaction: pass time up, the rest waits for the next pass",
				"pass_max_duration", l.cfg.Compaction.PassMaxDuration, "entries_deferred", n)
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// errPassTime ends a pass's rewrites at PassMaxDuration.
var errPassTime = errors.New("compaction pass time up")

// compactBatches splits groups (each partition's in a row, in offset
// order) into batches of whole partitions whose largest groups sum to at
// most buffer. A partition's groups are complete one after the other
// (sources are read in seal order, and a group's runs were all sealed
// before the next group's), so it holds at most its largest group at
// once. A batch holds at least one partition: one whose largest group
// alone exceeds buffer (SegmentMaxBytes above BufferBytes) is a batch of
// its own, and rewriteBatch writes its segments in pieces of about
// BufferBytes.
func compactBatches(groups []*compactGroup, buffer int64) [][]*compactGroup {
	var batches [][]*compactGroup
	var cur []*compactGroup
	var curBytes int64
	for i := 0; i < len(groups); {
		j := i
		var largest int64
		for ; j < len(groups) && groups[j].p == groups[i].p; j++ {
			var n int64
			for _, e := range groups[j].old {
				n += e.Len
			}
			largest = max(largest, n)
		}
		if len(cur) > 0 && curBytes+largest > buffer {
			batches = append(batches, cur)
			cur, curBytes = nil, 0
		}
		cur = append(cur, groups[i:j]...)
		curBytes += largest
		i = j
	}
	if len(cur) > 0 {
		batches = append(batches, cur)
	}
	return batches
}

// rewriteBatch writes a batch of planned groups, reading every source
// object at most once (one GET of the range covering the runs the batch
// takes from it, split only where that range would exceed
// MaxObjectBytes): a flush object holds runs of many partitions, each in
// a different group. Objects are read in seal order, which is the order
// of each group's runs, and a group is written as soon as its last run
// is read. The runs held for groups not yet complete are bounded by
// BufferBytes, checked after each read: past it (only when one
// partition's group alone is larger, see compactBatches), the group whose
// read prefix is the largest is written with it (a smaller segment; the
// rest of its runs go on as a group of their own), so a pass holds at
// most BufferBytes plus one read and its copies. A read is also split at
// gaps wider than a read chunk, and a failed read counts one failure.
func (l *Log) rewriteBatch(ctx context.Context, groups []*compactGroup, st *CompactionStats, pace *pacer, scratch *[]byte, letGo *int) error {
	type source struct {
		key     string
		created int64
		runs    []sourceRun
	}
	byKey := make(map[string]*source)
	var sources []*source
	for _, g := range groups {
		g.bodies = make([][]byte, len(g.old))
		g.missing = len(g.old)
		for i, e := range g.old {
			s := byKey[e.ObjectKey]
			if s == nil {
				s = &source{key: e.ObjectKey, created: e.ObjectCreatedAt}
				byKey[e.ObjectKey] = s
				sources = append(sources, s)
			}
			s.runs = append(s.runs, sourceRun{g, i})
		}
	}
	sort.Slice(sources, func(i, j int) bool {
		a, b := sources[i], sources[j]
		return a.created < b.created || a.created == b.created && a.key < b.key
	})
	var held int64 // bytes in the bodies of every group
	drop := func(g *compactGroup) {
		held -= g.held
		g.bodies, g.held, g.done = nil, 0, true
	}
	fail := func(g *compactGroup, err error) {
		pace.progress = true // a group came to its end
		l.compaction.conflicts.WithLabelValues("error").Inc()
		st.Conflicts++
		l.log.Warn("object compaction failed", "topic", g.p.topicName, "partition", g.p.tp.Partition, "err", err)
		drop(g)
	}
	fenced := func(p *partition) {
		for _, g := range groups {
			if g.p == p && !g.done {
				drop(g)
			}
		}
	}
	// write writes g's read prefix as a segment; the rest of g, if any,
	// stays a group.
	write := func(g *compactGroup) error {
		pace.progress = true
		old, bodies := g.old[g.start:g.prefix], slices.Clone(g.bodies[g.start:g.prefix])
		clear(g.bodies[g.start:g.prefix])
		g.held -= g.prefixBytes
		held -= g.prefixBytes
		g.start, g.prefixBytes = g.prefix, 0
		if g.start == len(g.old) {
			drop(g)
		}
		if _, _, _, f := g.p.committedState(); f {
			fenced(g.p) // the lease lapsed during the pass
			return nil
		}
		err := l.compactRun(ctx, g.p, old, bodies, scratch, st)
		clean := l.compaction.clean
		switch {
		case err == nil && clean[g.p.tp] == old[0].BaseOffset:
			clean[g.p.tp] = old[len(old)-1].LastOffset + 1 // the compacted prefix grew
		case errors.Is(err, errPartitionFenced):
			fenced(g.p)
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		}
		// Counted and logged; the next pass retries.
		return pace.step(ctx)
	}
	readLimit := int64(l.cfg.MaxObjectBytes)
	// A gap wider than a read chunk between two runs the batch takes (runs
	// of partitions in other batches or led elsewhere) splits the read:
	// two GETs cost less than reading the gap.
	gapLimit := l.cfg.ReadChunkBytes
	for _, s := range sources {
		var runs []sourceRun
		for _, r := range s.runs {
			if !r.g.done {
				runs = append(runs, r)
			}
		}
		if len(runs) == 0 {
			continue
		}
		sort.Slice(runs, func(i, j int) bool { return runs[i].entry().Pos < runs[j].entry().Pos })
		st.ObjectsRead++
		for len(runs) > 0 {
			// One read: the runs from the first on while the range
			// covering them stays within readLimit and no gap between
			// them is wider than gapLimit (at least one run).
			lo := runs[0].entry().Pos
			hi, n := lo, 0
			for ; n < len(runs); n++ {
				e := runs[n].entry()
				if n > 0 && (max(hi, e.Pos+e.Len)-lo > readLimit || e.Pos-hi > gapLimit) {
					break
				}
				hi = max(hi, e.Pos+e.Len)
			}
			part := runs[:n]
			runs = runs[n:]
			data, err := l.readSource(ctx, s.key, lo, hi-lo)
			if err := pace.step(ctx); err != nil {
				return err
			}
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				// Every group needing these runs waits for the next pass:
				// one failure counted and logged for the read.
				l.compaction.conflicts.WithLabelValues("error").Inc()
				st.Conflicts++
				pace.progress = true // a group came to its end
				n := 0
				for _, r := range part {
					if !r.g.done {
						drop(r.g)
						n++
					}
				}
				l.log.Warn("object compaction: read failed", "object", s.key, "segments_failed", n, "err", err)
				continue
			}
			st.ReadBytes += hi - lo
			st.PeakBytes = max(st.PeakBytes, held+2*(hi-lo))
			for _, r := range part {
				if r.g.done {
					continue // failed on an earlier run of this read
				}
				e := r.entry()
				run := data[e.Pos-lo : e.Pos-lo+e.Len]
				if err := checkRun(e, run); err != nil {
					fail(r.g, err)
					continue
				}
				// The run's group is written before the next read when
				// this is its last run missing: it may share data. Else
				// a copy, so that a group waiting for later runs does
				// not pin the whole read (nor a hot-tail object outside
				// the hot tail's budget).
				if r.g.missing > 1 {
					run = bytes.Clone(run)
				}
				r.g.take(r.i, run)
				held += e.Len
			}
			for _, r := range part {
				if g := r.g; !g.done && g.prefix == len(g.old) {
					if err := write(g); err != nil {
						return err
					}
				}
			}
			// Over the budget (checked after each read): write the read
			// prefix of the group holding the largest one, until under
			// it. Runs read out of seal order (no prefix) are let go:
			// the next pass reads them again.
			for held > l.cfg.Compaction.BufferBytes {
				var best, most *compactGroup
				for _, g := range groups {
					if g.done {
						continue
					}
					if most == nil || g.held > most.held {
						most = g
					}
					if g.prefix > g.start && (best == nil || g.prefixBytes > best.prefixBytes) {
						best = g
					}
				}
				if best == nil {
					n := len(most.old) - most.start
					*letGo += n
					st.Deferred += n
					l.compaction.deferred.Add(float64(n))
					// A group let go is no progress: the next pass
					// plans it again, so a pass that stopped here past
					// its deadline would never reach the groups after
					// it, pass after pass.
					drop(most)
					continue
				}
				if err := write(best); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// pacer spaces a pass's steps while appends press the agent
// (CompactionConfig.BusyShare) and ends the pass's rewrites at its
// deadline (PassMaxDuration), but only once the pass has brought a group
// to its end (progress): a pass whose first group's reads and waits take
// longer than the limit (a slow bucket, appends pressing the agent)
// still writes that segment, so the next pass does not plan and read the
// same objects again, forever. A group's end is its write (or write
// tried) or its failure; a group let go under BufferBytes is planned
// again by the next pass, so it is not one: past the deadline a pass
// reads on until its first write or failure, at most its whole plan
// (maxPassEntries) when every group before is let go.
type pacer struct {
	l        *Log
	st       *CompactionStats
	since    time.Time // the current step's start
	deadline time.Time
	// progress: a group of the pass was written (or its write tried),
	// or failed for good (a read or a run check failed).
	progress bool
}

// step ends a step (a read or a segment write): it counts its time and,
// while appends press the agent, waits so that steps take at most
// BusyShare of the time at full pressure (less as the pressure is lower,
// nothing with spare capacity). Past the deadline, once the pass made
// progress, it returns errPassTime (the wait is cut at the deadline
// then; before, it is not, so the first group still yields to appends).
func (pc *pacer) step(ctx context.Context) error {
	work := time.Since(pc.since)
	pc.st.Busy += work
	share := pc.l.cfg.Compaction.BusyShare
	if scale := yieldScale(pc.l.appendPressure()); share < 1 && scale > 0 {
		wait := time.Duration(float64(work) * (1/share - 1) * scale)
		if pc.progress {
			wait = min(wait, time.Until(pc.deadline))
		}
		start := time.Now()
		ok := sleepCtx(ctx, wait)
		waited := time.Since(start)
		pc.st.Yielded += waited
		pc.l.compaction.yielded.Add(waited.Seconds())
		if !ok {
			return ctx.Err()
		}
	}
	pc.l.compaction.tick()
	pc.since = time.Now()
	if pc.progress && !pc.since.Before(pc.deadline) {
		return errPassTime
	}
	return nil
}

// Append pressure at or below yieldFrom is spare capacity (no wait);
// from yieldFull on, compaction waits its whole share (BusyShare).
const yieldFrom, yieldFull = 0.125, 0.5

// yieldScale maps the append pressure to the share of the full wait.
func yieldScale(pressure float64) float64 {
	return min(1, max(0, (pressure-yieldFrom)/(yieldFull-yieldFrom)))
}

// appendPressure is how much the agent's appends press it, from 0 to 1:
// its pending bytes (buffered and uploading, what backpressure bounds)
// as a share of MaxPendingBytes, or 1 while every upload slot is taken
// (the sealer waits for one).
func (l *Log) appendPressure() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inflight >= l.cfg.MaxInflightUploads {
		return 1
	}
	return min(1, float64(l.pending)/float64(l.cfg.MaxPendingBytes))
}

// readSource reads [off, off+n) of an object for compaction: from the
// hot tail when it has the object, else with one GET (not through the
// read cache: compaction reads each object once, readers' chunks stay).
func (l *Log) readSource(ctx context.Context, key string, off, n int64) ([]byte, error) {
	if data := l.reader.hot.get(key, off, n); data != nil {
		return data, nil
	}
	data, err := l.bucket.GetRange(ctx, key, off, n)
	if err != nil {
		return nil, fmt.Errorf("read %s [%d,+%d): %w", key, off, n, err)
	}
	if int64(len(data)) != n {
		return nil, fmt.Errorf("read %s [%d,+%d): %d bytes: %w", key, off, n, len(data), batch.ErrCorrupt)
	}
	return data, nil
}

// compactRun writes one group of runs (their bytes read) as a segment
// object and switches the index to it, counting the outcome in st and
// the metrics.
func (l *Log) compactRun(ctx context.Context, p *partition, old []metadata.IndexEntry, bodies [][]byte, scratch *[]byte, st *CompactionStats) error {
	records := make([]int32, len(old))
	maxTs := make([]int64, len(old))
	for i, e := range old {
		records[i], maxTs[i] = e.Records, e.MaxTimestamp
	}
	res, err := l.writeSegment(ctx, p, old, bodies, records, maxTs, compactedSuffix, scratch)
	c := l.compaction
	var fe *metadata.FencedError
	switch {
	case err == nil:
		st.Segments++
		st.Entries += len(old)
		st.Bytes += res.bytes
		c.objects.Inc()
		c.entries.Add(float64(len(old)))
		c.bytes.Add(float64(res.bytes))
		return nil
	case errors.As(err, &fe):
		c.conflicts.WithLabelValues("fenced").Inc()
		st.Conflicts++
		l.log.Info("object compaction: lease moved", "topic", p.topicName, "partition", p.tp.Partition, "err", err)
		return errPartitionFenced
	case errors.Is(err, metadata.ErrIndexChanged) || errors.Is(err, metadata.ErrObjectConflict):
		c.conflicts.WithLabelValues("changed").Inc()
		st.Conflicts++
		l.log.Info("object compaction: index changed meanwhile", "topic", p.topicName, "partition", p.tp.Partition, "err", err)
		return err
	case ctx.Err() != nil:
		return ctx.Err()
	default:
		c.conflicts.WithLabelValues("error").Inc()
		st.Conflicts++
		l.log.Warn("object compaction failed", "topic", p.topicName, "partition", p.tp.Partition, "err", err)
		return err
	}
}

// rewriteResult describes a switched segment.
type rewriteResult struct {
	key     string
	entries []metadata.IndexEntry // the new index entries
	bytes   int64                 // record bytes written
}

// rewriteRun is the rewrite-and-switch step: it reads old (a dense run of
// p's committed index entries) through the read path, passes each
// entry's bytes through keep (nil: unchanged; key compaction passes a
// function that drops records, keeping the offsets of those left, and
// returns the bytes, the records and the newest timestamp left),
// writes the result as one segment object of p (its key ending in
// suffix), and switches the index
// from old to it in one fenced transaction. The new index entries break at
// old entries' boundaries, each at most EntryMaxBytes (or one old entry).
// On success the partition's in-memory index follows; on an unknown
// outcome it forgets the range, so readers ask the store. A failed switch
// leaves the new object to garbage collection as an orphan.
func (l *Log) rewriteRun(ctx context.Context, p *partition, old []metadata.IndexEntry, suffix string, keep func(e metadata.IndexEntry, data []byte) (keptRun, error)) (rewriteResult, error) {
	var res rewriteResult
	// Read and check each run: whole batches, from its base offset to its
	// last offset, as the index says.
	bodies := make([][]byte, len(old))
	records := make([]int32, len(old))
	maxTs := make([]int64, len(old))
	for i, e := range old {
		sp, err := l.reader.read(ctx, e)
		if err != nil {
			return res, fmt.Errorf("read %s [%d,+%d): %w", e.ObjectKey, e.Pos, e.Len, err)
		}
		data := sp.bytes()
		if int64(len(data)) != e.Len {
			return res, fmt.Errorf("read %s [%d,+%d): %d bytes: %w", e.ObjectKey, e.Pos, e.Len, len(data), batch.ErrCorrupt)
		}
		if err := checkRun(e, data); err != nil {
			return res, err
		}
		records[i], maxTs[i] = e.Records, e.MaxTimestamp
		if keep != nil {
			k, err := keep(e, data)
			if err != nil {
				return res, err
			}
			data, records[i], maxTs[i] = k.data, k.records, k.maxTimestamp
		}
		// A copy: data may be a slice of a cache chunk or a hot-tail
		// object, which must not stay pinned outside those caches' budgets.
		bodies[i] = bytes.Clone(data)
	}
	return l.writeSegment(ctx, p, old, bodies, records, maxTs, suffix, nil)
}

// writeSegment is rewriteRun after the reads: it writes bodies (old's
// bytes, as kept, with their record counts and newest timestamps) as one
// segment object and switches the index from old to it. The object is
// built in *scratch when it is big enough (and *scratch is left holding
// the larger buffer), so a pass allocates one; nil scratch: a new one.
func (l *Log) writeSegment(ctx context.Context, p *partition, old []metadata.IndexEntry, bodies [][]byte, records []int32, maxTs []int64, suffix string, scratch *[]byte) (rewriteResult, error) {
	var res rewriteResult
	// Lay out the segment: one footer run per new index entry.
	now := l.cfg.Now()
	total := 0
	for _, b := range bodies {
		total += len(b)
	}
	var runs []SegmentRun
	var created int64
	for i, e := range old {
		created = max(created, e.ObjectCreatedAt)
		n := int64(len(bodies[i]))
		if k := len(runs) - 1; k >= 0 && runs[k].Len+n <= l.cfg.Compaction.EntryMaxBytes {
			r := &runs[k]
			r.LastOffset, r.Len, r.Records = e.LastOffset, r.Len+n, r.Records+records[i]
			r.MaxTimestamp = max(r.MaxTimestamp, maxTs[i])
			continue
		}
		runs = append(runs, SegmentRun{
			TopicID: p.tp.TopicID, Partition: p.tp.Partition, BaseOffset: e.BaseOffset, LastOffset: e.LastOffset,
			Len: n, Records: records[i], MaxTimestamp: maxTs[i],
		})
	}
	var data []byte
	if size := segmentSize(len(runs), total); scratch != nil && cap(*scratch) >= size {
		data = (*scratch)[:segmentHeaderSize]
	} else {
		data = make([]byte, segmentHeaderSize, size)
		if scratch != nil {
			*scratch = data
		}
	}
	encodeSegmentHeader(data, now.UnixMilli(), len(runs))
	for _, b := range bodies {
		data = append(data, b...)
	}
	pos := int64(segmentHeaderSize)
	l.mu.Lock()
	l.seq++
	res.key = fmt.Sprintf("%s%s/%013d-%s-%08d%s", l.cfg.ObjectPrefix, l.cfg.AgentID, now.UnixMilli(), l.bootID, l.seq, suffix)
	l.mu.Unlock()
	for i := range runs {
		r := &runs[i]
		r.Pos = pos
		r.CRC = crc32.Checksum(data[pos:pos+r.Len], crcTable)
		pos += r.Len
		res.entries = append(res.entries, metadata.IndexEntry{
			BaseOffset: r.BaseOffset, LastOffset: r.LastOffset, ObjectKey: res.key,
			Pos: r.Pos, Len: r.Len, MaxTimestamp: r.MaxTimestamp, Records: r.Records, ObjectCreatedAt: created,
		})
	}
	data = appendSegmentFooter(data, runs)
	res.bytes = int64(total)

	putAt := l.cfg.Now()
	if err := objstore.PutOrMatch(ctx, l.bucket, res.key, data); err != nil {
		return res, fmt.Errorf("upload %s: %w", res.key, err)
	}
	// Garbage collection may delete an uncommitted object from its
	// creation + GCGrace on: no switch may start later than a commit
	// could (see Log.commitDeadline).
	if l.cfg.Now().After(putAt.Add(l.cfg.GCGrace - l.commitMargin())) {
		return res, fmt.Errorf("switch to %s: too late to be safe from garbage collection", res.key)
	}
	sctx, cancel := context.WithTimeout(ctx, l.cfg.CommitTimeout)
	err := l.store.ReplaceIndex(sctx, metadata.IndexReplacement{
		TopicPartition: p.tp, AgentID: l.cfg.AgentID, Epoch: p.epoch, Old: old, New: res.entries,
		ObjectKey: res.key, Size: int64(len(data)), CreatedAt: time.UnixMilli(created),
	})
	cancel()
	var fe *metadata.FencedError
	switch {
	case err == nil:
		p.replaceIndex(res.entries, true)
	case errors.As(err, &fe), errors.Is(err, metadata.ErrIndexChanged), errors.Is(err, metadata.ErrInvalidCommit):
		// Refused: nothing changed.
	default:
		// The switch may have landed: the in-memory index must not keep
		// entries whose objects garbage collection may delete.
		p.replaceIndex(res.entries, false)
	}
	if err != nil {
		return res, fmt.Errorf("switch %s to %s: %w", p.tp, res.key, err)
	}
	return res, nil
}

// checkRun checks that data, an index entry's bytes, is whole record
// batches from the entry's base offset to its last offset. A run key
// compaction wrote (its object key ends in keyCompactedSuffix) may have
// lost batches anywhere (even all of them): its batches need only be in
// order within the entry's offsets.
func checkRun(e metadata.IndexEntry, data []byte) error {
	gaps := strings.HasSuffix(e.ObjectKey, keyCompactedSuffix)
	next := e.BaseOffset
	for pos := 0; pos < len(data); {
		h, err := batch.DecodeHeader(data[pos:])
		if err == nil && pos+h.Size() > len(data) {
			err = fmt.Errorf("batch of %d bytes at %d overruns the run: %w", h.Size(), pos, batch.ErrCorrupt)
		}
		if err == nil && h.BaseOffset < next {
			err = fmt.Errorf("batch at offset %d, want at least %d: %w", h.BaseOffset, next, batch.ErrCorrupt)
		}
		if err != nil {
			return fmt.Errorf("object %s at %d: %w", e.ObjectKey, e.Pos+int64(pos), err)
		}
		next = h.LastOffset() + 1
		pos += h.Size()
	}
	if next != e.LastOffset+1 && !(gaps && next <= e.LastOffset+1) {
		return fmt.Errorf("object %s at %d: batches end at offset %d, the index says %d: %w", e.ObjectKey, e.Pos, next-1, e.LastOffset, batch.ErrCorrupt)
	}
	return nil
}

// replaceIndex follows a switch of the store's index to entries (dense)
// in the partition's in-memory index: the entries covering the same
// offsets are replaced when the in-memory index holds exactly them at an
// entry boundary (switched), else dropped, so lookups of those offsets go
// to the store. Entries after the range are kept.
func (p *partition) replaceIndex(entries []metadata.IndexEntry, switched bool) {
	first, last := entries[0].BaseOffset, entries[len(entries)-1].LastOffset
	p.mu.Lock()
	defer p.mu.Unlock()
	j := sort.Search(len(p.index), func(i int) bool { return p.index[i].BaseOffset > last })
	if j == 0 {
		return // the in-memory index starts after the range
	}
	i := sort.Search(len(p.index), func(i int) bool { return p.index[i].LastOffset >= first })
	if !switched || i >= len(p.index) || p.index[i].BaseOffset != first || p.index[j-1].LastOffset != last {
		p.index = append(p.index[:0], p.index[j:]...)
		return
	}
	out := make([]metadata.IndexEntry, 0, i+len(entries)+len(p.index)-j)
	out = append(out, p.index[:i]...)
	for _, e := range entries {
		e.ObjectCreatedAt = 0 // as the write path's entries
		out = append(out, e)
	}
	p.index = append(out, p.index[j:]...)
}
