package partlog

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/faulty"
	"github.com/streamhouse/streamhouse/internal/objstore"
)

// The randomized model test of the partition log: two agents share a
// metadata store and a bucket, each behind its own fault injector, and a
// seeded sequence of steps appends, reads, leads, releases, cuts agents off
// from lease renewal, lets time pass, collects garbage, and makes commits
// land-but-fail or slow and PUTs fail, lose their answer or hang. A model
// checks after every step that every durably acknowledged record is
// readable at its offset with its bytes, offsets are dense, no two
// different records are ever seen at one offset, and the high watermark
// never goes down (beyond the instant between the store making a commit
// visible and its leader publishing it, see checkPartition).
//
// Replay a failure with -model.seed=N (or STREAMHOUSE_MODEL_SEED=N); set
// the length with -model.steps.
var (
	modelSeed  = flag.Uint64("model.seed", 0, "seed of TestModel (0: random)")
	modelSteps = flag.Int("model.steps", 0, "steps of TestModel per backend (0: 300 on SQLite, 100 on PostgreSQL)")
)

func TestModel(t *testing.T) {
	seed := *modelSeed
	if v := os.Getenv("STREAMHOUSE_MODEL_SEED"); v != "" && seed == 0 {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("STREAMHOUSE_MODEL_SEED=%q: %v", v, err)
		}
		seed = n
	}
	if seed == 0 {
		seed = rand.Uint64()
	}
	onBackends(t, func(t *testing.T, open storeOpener) {
		steps := *modelSteps
		if steps == 0 {
			steps = 300
			if t.Name() == "TestModel/postgres" {
				steps = 100
			}
		}
		t.Logf("seed %d (replay: go test -run 'TestModel' -model.seed=%d ./internal/partlog)", seed, seed)
		m := newModel(t, open, seed)
		defer func() {
			if t.Failed() {
				t.Logf("failed with seed %d at step %d; replay with -model.seed=%d", seed, m.step, seed)
			}
		}()
		for m.step = 0; m.step < steps && !t.Failed(); m.step++ {
			m.randomStep()
			m.checkReads()
		}
		m.finish()
	})
}

type modelAgent struct {
	name   string
	log    *Log
	store  *faulty.Store
	bucket *objstore.Faulty
	cutOff bool
}

type pendingAppend struct {
	agent  *modelAgent
	tp     metadata.TopicPartition
	values []string
	a      *Appending
}

type model struct {
	t      *testing.T
	e      *env
	rng    *rand.Rand
	topic  metadata.Topic
	agents []*modelAgent
	step   int
	serial int

	pending []*pendingAppend
	acked   map[metadata.TopicPartition]map[int64]string // durable acks
	seen    map[metadata.TopicPartition]map[int64]string // every record read
	maxHW   map[metadata.TopicPartition]int64
	hangs   int // steps until hung PUTs are released; 0: none hung
}

const modelPartitions = 2

func newModel(t *testing.T, open storeOpener, seed uint64) *model {
	clk := &clock{}
	// The bucket stamps objects with the agents' clock: garbage collection
	// relies on the store's clock agreeing with theirs (within the skew).
	mem := objstore.NewMemoryClock(clk.Now)
	e := newEnv(t, open, mem)
	e.clock = clk
	m := &model{
		t: t, e: e, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		acked: map[metadata.TopicPartition]map[int64]string{},
		seen:  map[metadata.TopicPartition]map[int64]string{},
		maxHW: map[metadata.TopicPartition]int64{},
	}
	m.topic = e.topic("model", modelPartitions, map[string]string{"retention.ms": "-1"})
	for _, name := range []string{"a", "b"} {
		ag := &modelAgent{name: name, store: faulty.New(e.store), bucket: objstore.NewFaulty(mem)}
		cfg := e.config(name)
		cfg.Store, cfg.Bucket = ag.store, ag.bucket
		ag.log = e.open(cfg)
		m.agents = append(m.agents, ag)
	}
	for p := range int32(modelPartitions) {
		m.acked[m.tp(p)] = map[int64]string{}
		m.seen[m.tp(p)] = map[int64]string{}
	}
	return m
}

func (m *model) tp(p int32) metadata.TopicPartition { return tpOf(m.topic, p) }

func (m *model) logf(format string, args ...any) {
	m.t.Logf("step %d: %s", m.step, fmt.Sprintf(format, args...))
}

// randomStep does one random operation.
func (m *model) randomStep() {
	ag := m.agents[m.rng.IntN(len(m.agents))]
	p := int32(m.rng.IntN(modelPartitions))
	ctx := context.Background()
	if m.hangs > 0 {
		if m.hangs--; m.hangs == 0 {
			for _, a := range m.agents {
				a.bucket.Clear()
				a.bucket.Release()
			}
		}
	}
	switch r := m.rng.IntN(100); {
	case r < 40:
		m.append(ag, p)
	case r < 52:
		err := ag.log.Lead(ctx, m.topic, p)
		if err != nil && !errors.Is(err, metadata.ErrLeaseHeld) {
			m.logf("%s lead %d: %v", ag.name, p, err)
		}
	case r < 57:
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := ag.log.Release(rctx, m.tp(p))
		cancel()
		m.logf("%s release %d: %v", ag.name, p, err)
	case r < 63:
		// Cut the agent off from lease renewal, or reconnect it.
		if ag.cutOff {
			ag.store.Clear()
		} else {
			ag.store.Inject(faulty.Fault{Op: faulty.OpRenewLeases})
		}
		ag.cutOff = !ag.cutOff
		m.logf("%s cut off: %v", ag.name, ag.cutOff)
	case r < 70:
		// Time passes: sometimes past a lease, so another agent may take
		// over from one cut off.
		d := time.Duration(m.rng.IntN(3000)) * time.Millisecond
		if m.rng.IntN(3) == 0 {
			d = 11 * time.Second
		}
		m.e.clock.Advance(d)
		m.logf("clock +%v", d)
	case r < 75:
		// A commit that lands but reports failure.
		ag.store.Inject(faulty.Fault{Op: faulty.OpCommitObject, AfterWrite: true, Times: 1})
	case r < 79:
		// A slow commit.
		ag.store.Inject(faulty.Fault{Op: faulty.OpCommitObject, Delay: time.Duration(1+m.rng.IntN(50)) * time.Millisecond, Times: 1})
	case r < 84:
		// A PUT that lands but whose answer is lost, or that fails.
		ag.bucket.Inject(objstore.Fault{Op: objstore.OpPut, AfterWrite: m.rng.IntN(2) == 0, Times: 1})
	case r < 87:
		if m.hangs == 0 {
			ag.bucket.Inject(objstore.Fault{Op: objstore.OpPut, Hang: true, Times: 1})
			m.hangs = 1 + m.rng.IntN(4)
		}
	case r < 90:
		if _, err := ag.log.CollectGarbage(ctx); err != nil {
			m.logf("%s gc: %v", ag.name, err)
		}
	default:
		m.pollPending(2 * time.Second)
	}
	m.pollPending(0)
}

func (m *model) append(ag *modelAgent, p int32) {
	n := 1 + m.rng.IntN(4)
	values := make([]string, n)
	recs := make([]batch.Record, n)
	for i := range values {
		m.serial++
		values[i] = fmt.Sprintf("r%d", m.serial)
		recs[i] = batch.Record{Value: []byte(values[i]), Timestamp: 1700000000000}
	}
	b, err := batch.Build(recs, batch.DefaultBuildOptions())
	if err != nil {
		m.t.Fatal(err)
	}
	mode := AckDurable
	if m.rng.IntN(5) == 0 {
		mode = AckBuffered // promised nothing durable; must still never conflict
	}
	a, err := ag.log.AppendAsync(context.Background(), m.tp(p), b, mode)
	if err != nil {
		if !errors.Is(err, ErrNotLeader) {
			m.t.Fatalf("step %d: %s append: %v", m.step, ag.name, err)
		}
		return
	}
	if mode == AckDurable {
		m.pending = append(m.pending, &pendingAppend{agent: ag, tp: m.tp(p), values: values, a: a})
	}
}

// pollPending collects the outcomes of durable appends, waiting up to wait
// for each.
func (m *model) pollPending(wait time.Duration) {
	kept := m.pending[:0]
	for _, pa := range m.pending {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		res, err := pa.a.Wait(ctx)
		done := ctx.Err() == nil || !errors.Is(err, context.DeadlineExceeded)
		cancel()
		switch {
		case !done:
			kept = append(kept, pa)
		case err != nil:
			if !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrClosed) {
				m.t.Fatalf("step %d: durable append by %s failed with %v; want success or NOT_LEADER", m.step, pa.agent.name, err)
			}
		default:
			if int(res.LastOffset-res.BaseOffset)+1 != len(pa.values) {
				m.t.Fatalf("step %d: ack %d..%d for %d records", m.step, res.BaseOffset, res.LastOffset, len(pa.values))
			}
			for i, v := range pa.values {
				off := res.BaseOffset + int64(i)
				if old, ok := m.acked[pa.tp][off]; ok && old != v {
					m.t.Fatalf("step %d: %s offset %d acknowledged twice: %s and %s", m.step, pa.tp, off, old, v)
				}
				if old, ok := m.seen[pa.tp][off]; ok && old != v {
					m.t.Fatalf("step %d: %s offset %d acknowledged as %s but read as %s", m.step, pa.tp, off, v, old)
				}
				m.acked[pa.tp][off] = v
			}
		}
	}
	m.pending = kept
}

// checkReads reads every partition through a random agent and checks it
// against the model.
func (m *model) checkReads() {
	ag := m.agents[m.rng.IntN(len(m.agents))]
	for p := range int32(modelPartitions) {
		m.checkPartition(ag, m.tp(p), false)
	}
}

func (m *model) checkPartition(ag *modelAgent, tp metadata.TopicPartition, final bool) {
	ctx := context.Background()
	got := map[int64]string{}
	off := int64(0)
	var hw int64
	for {
		res, err := ag.log.Read(ctx, tp, off, 1<<20, 0)
		if err != nil {
			m.t.Fatalf("step %d: %s reads %s at %d: %v", m.step, ag.name, tp, off, err)
		}
		if off == 0 {
			hw = res.HighWatermark
			// No step writes transactions: the last stable offset is
			// the high watermark, in memory and in the store alike.
			if res.LastStableOffset != hw {
				m.t.Fatalf("step %d: %s read by %s: last stable offset %d, high watermark %d, with no transaction", m.step, tp, ag.name, res.LastStableOffset, hw)
			}
		}
		if res.Size == 0 {
			break
		}
		bs, err := batch.Split(res.Bytes())
		if err != nil {
			m.t.Fatalf("step %d: %s: %v", m.step, tp, err)
		}
		for _, b := range bs {
			_, recs, err := batch.Records(b)
			if err != nil {
				m.t.Fatalf("step %d: %s: %v", m.step, tp, err)
			}
			for _, r := range recs {
				if r.Offset < off {
					continue
				}
				if r.Offset != off {
					m.t.Fatalf("step %d: %s: offset %d after %d, not dense", m.step, tp, r.Offset, off-1)
				}
				got[r.Offset] = string(r.Value)
				off++
			}
		}
		off = res.NextOffset
	}
	if hw < m.maxHW[tp] {
		// A leader publishes a commit (advances the high watermark it
		// serves) just after the store made it visible, so a reader that
		// saw the store's value through another path may see the leader's
		// previous one for that instant. Anything longer is a bug.
		deadline := time.Now().Add(5 * time.Second)
		for {
			now, _, err := ag.log.HighWatermark(ctx, tp)
			if err != nil {
				m.t.Fatalf("step %d: %s: high watermark: %v", m.step, tp, err)
			}
			if now >= m.maxHW[tp] {
				m.logf("%s's high watermark %d read by %s lagged %d for an instant", tp, hw, ag.name, m.maxHW[tp])
				break
			}
			if time.Now().After(deadline) {
				m.t.Fatalf("step %d: %s's high watermark went down: %d after %d (read by %s)", m.step, tp, now, m.maxHW[tp], ag.name)
			}
			time.Sleep(time.Millisecond)
		}
	}
	m.maxHW[tp] = max(m.maxHW[tp], hw)
	if off < hw {
		m.t.Fatalf("step %d: %s: read stopped at %d below high watermark %d", m.step, tp, off, hw)
	}
	for o, v := range got {
		if old, ok := m.seen[tp][o]; ok && old != v {
			m.t.Fatalf("step %d: %s offset %d read as %s, earlier as %s", m.step, tp, o, v, old)
		}
		if a, ok := m.acked[tp][o]; ok && a != v {
			m.t.Fatalf("step %d: %s offset %d read as %s, acknowledged as %s", m.step, tp, o, v, a)
		}
		m.seen[tp][o] = v
	}
	for o, v := range m.acked[tp] {
		if o >= hw {
			m.t.Fatalf("step %d: %s acknowledged offset %d (%s) at or above the high watermark %d", m.step, tp, o, v, hw)
		}
		if _, ok := got[o]; !ok {
			m.t.Fatalf("step %d: %s acknowledged offset %d (%s) not readable", m.step, tp, o, v)
		}
	}
}

// finish lifts every fault, waits for the appends in flight and checks
// everything once more through both agents.
func (m *model) finish() {
	if m.t.Failed() {
		return
	}
	for _, a := range m.agents {
		a.store.Clear()
		a.store.Release()
		a.bucket.Clear()
		a.bucket.Release()
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(m.pending) > 0 && time.Now().Before(deadline) {
		m.pollPending(time.Second)
	}
	if len(m.pending) > 0 {
		m.t.Fatalf("%d durable appends still unanswered a minute after the faults stopped", len(m.pending))
	}
	total := 0
	for _, ag := range m.agents {
		for p := range int32(modelPartitions) {
			m.checkPartition(ag, m.tp(p), true)
		}
	}
	for _, acked := range m.acked {
		total += len(acked)
	}
	m.t.Logf("%d steps, %d records acknowledged durably, high watermarks %v", m.step, total, m.maxHW)
}
