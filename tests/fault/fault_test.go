package fault

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamhouse/streamhouse/internal/e2e"
)

// leaseTTL is short so that pauses and cut-offs past the lease fit in a
// short run.
const leaseTTL = 3 * time.Second

// TestFaultInjection attacks the promises with real binaries (see the
// package comment). Its verdict does not depend on timing: only what a
// correct server guarantees whatever the timing is checked.
func TestFaultInjection(t *testing.T) {
	t.Parallel()
	tl := findTools(t)
	duration := 2 * time.Minute
	if v := os.Getenv("STREAMHOUSE_FAULT_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("STREAMHOUSE_FAULT_DURATION=%q: want a duration such as 30m", v)
		}
		duration = d
	}
	seed := rand.Uint64() >> 1
	if v := os.Getenv("STREAMHOUSE_FAULT_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("STREAMHOUSE_FAULT_SEED=%q: want a number", v)
		}
		seed = s
	}
	t.Logf("nemesis seed %d for %v (replay the schedule with STREAMHOUSE_FAULT_SEED=%d)", seed, duration, seed)
	if dl, ok := t.Deadline(); ok && time.Until(dl) < duration+3*time.Minute {
		t.Fatalf("the test deadline is %v away; a %v run needs about %v: raise -timeout", time.Until(dl).Round(time.Second), duration, duration+3*time.Minute)
	}

	began := time.Now()
	bin := e2e.Binary(t)
	t.Logf("binary built in %v", time.Since(began).Round(time.Second))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	// One folder for everything the run leaves behind (PostgreSQL's
	// cluster, the bucket, the agents' logs), kept when the test fails or
	// STREAMHOUSE_FAULT_KEEP is set.
	root, err := os.MkdirTemp("", "streamhouse-fault-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(root, 0o755); err != nil { // the postgres user reaches its folder
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("STREAMHOUSE_FAULT_KEEP") != "" {
			t.Logf("logs and data kept in %s", root)
			return
		}
		_ = os.RemoveAll(root)
	})
	mkdir := func(name string) string {
		d := filepath.Join(root, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}

	pg, err := newPostgres(ctx, tl.pgBin, mkdir("pg"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.stop)
	s3, err := newObjectStore(ctx, tl.versitygw, mkdir("s3"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s3.proc.kill)
	const bucket = "streamhouse-fault"
	if err := s3.createBucket(ctx, bucket); err != nil {
		t.Fatal(err)
	}

	agents := make([]*agent, 3)
	seeds := make([]string, len(agents))
	for i := range agents {
		id := fmt.Sprintf("agent-%d", i)
		pgp, err := newProxy(id+"-pg", pg.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = pgp.Close() })
		s3p, err := newProxy(id+"-s3", s3.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s3p.Close() })
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		dir := mkdir(id)
		a := &agent{id: id, dir: dir, bin: bin, kafkaAddr: fmt.Sprintf("127.0.0.1:%d", port),
			logPath: filepath.Join(root, id+".log"), pg: pgp, s3: s3p}
		a.env = agentEnv(id, dir, a.kafkaAddr, bucket, pgp, s3p, leaseTTL)
		t.Cleanup(func() { a.stop(syscall.SIGKILL) })
		agents[i], seeds[i] = a, a.kafkaAddr
	}
	// The first agent migrates the database; the others start together.
	if err := agents[0].start(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(agents))
	for i := 1; i < len(agents); i++ {
		wg.Go(func() { errs[i] = agents[i].start(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}

	admCl, err := newClient(seeds)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admCl.Close)
	adm := kadm.NewClient(admCl)
	for name, n := range map[string]int32{topic: partitions, txnTopic: txnPartitions, eosTopic: txnPartitions, compactTopic: compactPartitions} {
		var configs map[string]*string
		if name == compactTopic {
			configs = compactConfig
		}
		within(t, time.Minute, "create topic "+name, func() error {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			r, err := adm.CreateTopic(cctx, n, -1, configs, name)
			if err == nil {
				err = r.Err
			}
			if errors.Is(err, kerr.TopicAlreadyExists) {
				return nil // an earlier attempt created it and its answer was lost
			}
			return err
		})
	}

	h := newHistory()
	w := &workload{h: h, seeds: seeds}
	t.Cleanup(w.close)
	if err := w.start(); err != nil {
		t.Fatal(err)
	}
	tw := &txnWorkload{h: h, seeds: seeds, seed: seed}
	t.Cleanup(tw.close)
	tw.start()
	cw := &compactWorkload{h: h.compact, seeds: seeds, seed: seed}
	t.Cleanup(cw.close)
	if err := cw.start(); err != nil {
		t.Fatal(err)
	}
	within(t, time.Minute, "the workload to start (records acked, every group member assigned, transactions and the pipeline committed)", func() error {
		h.compact.mu.Lock()
		cacks := len(h.compact.acks)
		h.compact.mu.Unlock()
		if cacks < 100 {
			return fmt.Errorf("%d records acked to %s", cacks, compactTopic)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.acks) < 100 {
			return fmt.Errorf("%d records acked", len(h.acks))
		}
		if n := h.txnCounts()[txnCommitted]; n < 5 {
			return fmt.Errorf("%d transactions committed; transactional errors: %s", n, topErrors(h.txnErrs, 3, func(time.Time) string { return "start" }))
		}
		if h.eosEnds["committed"] < 1 {
			return fmt.Errorf("no pipeline transaction committed; pipeline errors: %s", topErrors(h.eosErrs, 3, func(time.Time) string { return "start" }))
		}
		for _, g := range groups {
			if n := h.group(g.name).assigns; n < g.members {
				return fmt.Errorf("group %s: %d assignments", g.name, n)
			}
		}
		return nil
	})

	t.Logf("cluster up and workload running after %v; the nemesis starts", time.Since(began).Round(time.Second))
	c := &cluster{pg: pg, s3: s3, agents: agents, adm: adm, leaseTTL: leaseTTL, began: time.Now(), logf: t.Logf, txn: tw,
		progress: func() string {
			h.mu.Lock()
			defer h.mu.Unlock()
			tc := h.txnCounts()
			return fmt.Sprintf("sent %d, acked %d, produce errors %d, group reads %d; transactions committed %d, aborted %d, unknown %d, pipeline commits %d",
				h.sent, len(h.acks), sumCounts(h.prodErrs), h.reads, tc[txnCommitted], tc[txnAborted], tc[txnUnknown], h.eosEnds["committed"])
		}}
	var f final
	if err := c.nemesis(ctx, seed, duration); err != nil {
		f.nemesis = append(f.nemesis, err.Error())
	}
	nemesisEnd := time.Now()
	if err := c.healAll(ctx); err != nil {
		f.nemesis = append(f.nemesis, "heal: "+err.Error())
	}

	// The end: every fault is healed. Producers finish what they buffered,
	// the agents must be ready, the groups must catch up with the log,
	// then a fresh reader reads everything.
	if err := w.stopProducers(time.Minute); err != nil {
		t.Logf("producers did not finish within a minute after the heal (their unanswered records are not acked, so not checked): %v", err)
	}
	if err := cw.stopProducers(time.Minute); err != nil {
		t.Logf("%s producers did not finish within a minute after the heal (their unanswered records are not acked, so not checked): %v", compactTopic, err)
	}
	tw.stopProducers() // each ends the transaction it is in (bounded by txnOpTimeout)
	for _, a := range agents {
		var last error
		deadline := time.Now().Add(time.Minute)
		for {
			if last = a.ready(ctx); last == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if last != nil {
			f.notReady = append(f.notReady, fmt.Sprintf("%s not ready a minute after the heal: %v; log %s ends:\n%s", a.id, last, a.logPath, a.logTail(3000)))
		}
	}
	hwm := endOffsets(t, ctx, adm)
	f.behind = waitCaughtUp(ctx, adm, hwm, 90*time.Second)
	w.stopConsumers()
	for p, o := range endOffsets(t, ctx, adm) { // a late write may have landed
		hwm[p] = max(hwm[p], o)
	}
	f.hwm = hwm
	f.log, f.incomplete = finalRead(ctx, seeds, hwm, h, 2*time.Minute)
	f.committed = committedOffsets(t, ctx, adm)
	finalTxn(ctx, admCl, adm, tw, &f, t.Logf)
	cw.stopReader()
	f.compact = finalCompact(t, ctx, adm, seeds, h.compact, 2*time.Minute)
	w.close()
	for _, a := range agents {
		a.mu.Lock()
		f.unplanned = append(f.unplanned, a.unplanned...)
		a.mu.Unlock()
		for _, r := range a.raceReports() {
			f.races = append(f.races, a.id+": "+r)
		}
	}

	t.Logf("run over after %v; checking", time.Since(began).Round(time.Second))
	checks := checkRun(h, f)
	var failed []string
	for _, ch := range checks {
		if len(ch.violations) > 0 {
			failed = append(failed, ch.name)
			t.Errorf("%v", ch)
		} else {
			t.Logf("%v", ch)
		}
	}
	logged := 0
	for _, k := range sortedTxnKeys(h.txns) {
		if tx := h.txns[k]; tx.Outcome == txnUnknown && logged < 20 {
			logged++
			t.Logf("%s: outcome unknown to its producer (%s), read_committed shows it: %v", k, tx.Err, txnVisible(f.txnLog, k))
		}
	}
	gap := longestLeaderGap(h.meta, c.down)
	t.Logf("%s", summary(seed, duration, nemesisEnd.Sub(c.began), c, h, f, w, gap, failed))
}

// summary is the one line the reliability page quotes.
func summary(seed uint64, duration, ran time.Duration, c *cluster, h *history, f final, w *workload, gap leaderGap, failed []string) string {
	kinds := map[faultKind]int{}
	for _, fl := range c.faults {
		kinds[fl.Kind]++
	}
	var ks []string
	for _, k := range faultKinds {
		ks = append(ks, fmt.Sprintf("%s=%d", k, kinds[k]))
	}
	unacked := 0
	for _, v := range f.log {
		if _, ok := h.acks[v]; !ok {
			unacked++
		}
	}
	commits := 0
	for _, g := range h.groups {
		for _, s := range g.commits {
			commits += len(s)
		}
	}
	tc := h.txnCounts()
	stall := longestTxnStall(h.txns)
	confirmed := 0
	for _, tx := range h.txns {
		if tx.Outcome == txnAborted && tx.AbortConfirm {
			confirmed++
		}
	}
	verdict := "every check passed"
	if len(failed) > 0 {
		verdict = "FAILED: " + strings.Join(failed, ", ")
	}
	s := fmt.Sprintf("fault-injection summary: seed %d, nemesis %v (asked %v), %d faults (%s); sent %d, acked %d, produce errors %d, abandoned at the end %d; "+
		"final log %d records (%d not acked); group reads %d, accepted commits %d; "+
		"transactions committed %d, aborted %d (%d confirmed), unknown %d, open at the end %d, read_committed at the end %d records, during the run %d; "+
		"pipeline transactions committed %d, aborted %d, failed %d, output %d records; "+
		"longest a transactional producer went without ending a transaction %v (producer %d, during %s); "+
		"longest without a serving leader %v (partition %d, %s; %d Metadata samples); %s",
		seed, ran.Round(time.Second), duration, len(c.faults), strings.Join(ks, " "),
		h.sent, len(h.acks), sumCounts(h.prodErrs), w.abandoned,
		len(f.log), unacked, h.reads, commits,
		tc[txnCommitted], tc[txnAborted], confirmed, tc[txnUnknown], tc[txnOpen], len(f.txnLog), len(h.rcReads),
		h.eosEnds["committed"], h.eosEnds["aborted"], h.eosEnds["failed"], len(f.eosLog),
		stall.Length.Round(10*time.Millisecond), stall.Partition, c.faultsDuring(stall.Start, stall.Start.Add(stall.Length)),
		gap.Length.Round(10*time.Millisecond), gap.Partition, c.faultAt(gap.Start), gap.Samples, verdict)
	if gap.Length > 0 {
		s += fmt.Sprintf("\n  the longest without a serving leader, partition %d from %s: Metadata named %s; longest without a Metadata answer in it %v",
			gap.Partition, gap.Start.UTC().Format("15:04:05.000"), strings.Join(gap.Seen, ", then "), gap.Silent.Round(10*time.Millisecond))
	}
	s += "\n  " + compactSummary(h.compact, f.compact)
	if len(h.prodErrs) > 0 {
		s += "\n  produce errors: " + topErrors(h.prodErrs, 5, c.faultAt)
	}
	if len(h.compact.prodErrs) > 0 {
		s += "\n  " + compactTopic + " produce errors: " + topErrors(h.compact.prodErrs, 5, c.faultAt)
	}
	if len(h.compact.readErrs) > 0 {
		s += "\n  " + compactTopic + " reader errors: " + topErrors(h.compact.readErrs, 5, c.faultAt)
	}
	if len(h.fetchErrs) > 0 {
		s += "\n  group fetch errors: " + topErrors(h.fetchErrs, 5, c.faultAt)
	}
	if len(h.txnErrs) > 0 {
		s += "\n  transactional producer errors: " + topErrors(h.txnErrs, 5, c.faultAt)
	}
	if len(h.rcErrs) > 0 {
		s += "\n  read_committed reader errors: " + topErrors(h.rcErrs, 5, c.faultAt)
	}
	if len(h.eosErrs) > 0 {
		s += "\n  pipeline errors: " + topErrors(h.eosErrs, 5, c.faultAt)
	}
	return s
}

// finalCompact reads the compacted topic from the start to its high
// watermarks, once its producers and reader stopped.
func finalCompact(t *testing.T, ctx context.Context, adm *kadm.Client, seeds []string, h *compactHistory, d time.Duration) compactFinal {
	t.Helper()
	f := compactFinal{hwm: map[int32]int64{}}
	within(t, time.Minute, "list the high watermarks of "+compactTopic, func() error {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		lo, err := adm.ListEndOffsets(lctx, compactTopic)
		if err == nil {
			err = lo.Error()
		}
		if err != nil {
			return err
		}
		lo.Each(func(o kadm.ListedOffset) { f.hwm[o.Partition] = o.Offset })
		if len(f.hwm) != compactPartitions {
			return fmt.Errorf("%d partitions listed", len(f.hwm))
		}
		return nil
	})
	rctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	f.log, f.order, f.incomplete = readCompact(rctx, seeds, f.hwm, "the final read", h)
	return f
}

// finalTxn is the end of the transactional workload, with its producers
// stopped and every fault healed: every partition's last stable offset
// must reach its high watermark (within the transaction timeout and the
// coordinator's retries), then a read_committed read of the transactional
// topic, the pipeline catching up with it, and a read_committed read of
// the pipeline's output.
func finalTxn(ctx context.Context, cl *kgo.Client, adm *kadm.Client, tw *txnWorkload, f *final, logf func(string, ...any)) {
	const stableWithin = time.Minute
	var ids []string
	for i := range txnProducers {
		ids = append(ids, txnID(i))
	}
	for i := range eosMembers {
		ids = append(ids, fmt.Sprintf("fault-eos-%d", i))
	}
	hangs := func(v []string) {
		if len(v) > 0 {
			f.hanging = append(f.hanging, v...)
			f.hanging = append(f.hanging, "the coordinators' view: "+describeTxns(ctx, adm, ids))
		}
	}
	began := time.Now()
	hwm, hang := waitStable(ctx, adm, []string{topic, txnTopic}, stableWithin)
	hangs(hang)
	hwm0 := hwm[txnTopic]
	stable := time.Since(began)
	var inFetches, outFetches int
	f.txnLog, inFetches, f.txnIncomplete = readCommittedLog(ctx, cl, adm, txnTopic, hwm[txnTopic], 2*time.Minute)
	read := time.Since(began)
	f.eosBehind = eosCaughtUp(ctx, adm, f.txnLog, 90*time.Second)
	caughtUp := time.Since(began)
	tw.stopConsumers()
	hwm, hang = waitStable(ctx, adm, []string{eosTopic}, stableWithin)
	hangs(hang)
	f.eosLog, outFetches, f.eosIncomplete = readCommittedLog(ctx, cl, adm, eosTopic, hwm[eosTopic], 2*time.Minute)
	logf("transactional end: last stable offsets at the high watermarks after %v, input read (%d records, %d offsets, %d fetches) after %v, pipeline caught up after %v, output read (%d records, %d offsets, %d fetches) after %v",
		stable.Round(time.Millisecond), len(f.txnLog), sumOffsets(hwm0), inFetches, read.Round(time.Millisecond), caughtUp.Round(time.Millisecond),
		len(f.eosLog), sumOffsets(hwm[eosTopic]), outFetches, time.Since(began).Round(time.Millisecond))
}

func sumOffsets(m map[int32]int64) int64 {
	var n int64
	for _, o := range m {
		n += o
	}
	return n
}

// within polls fn (every 200 ms) until it returns nil, failing the test
// after d with the last error.
func within(t *testing.T, d time.Duration, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, d, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// endOffsets is every partition's high watermark.
func endOffsets(t *testing.T, ctx context.Context, adm *kadm.Client) map[int32]int64 {
	t.Helper()
	out := map[int32]int64{}
	within(t, time.Minute, "list the high watermarks", func() error {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		lo, err := adm.ListEndOffsets(lctx, topic)
		if err == nil {
			err = lo.Error()
		}
		if err != nil {
			return err
		}
		lo.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
		if len(out) != partitions {
			return fmt.Errorf("%d partitions listed", len(out))
		}
		return nil
	})
	return out
}

// committedOffsets is every group's committed offsets.
func committedOffsets(t *testing.T, ctx context.Context, adm *kadm.Client) map[string]map[int32]int64 {
	t.Helper()
	out := map[string]map[int32]int64{}
	for _, g := range groups {
		within(t, time.Minute, "fetch the committed offsets of "+g.name, func() error {
			fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			r, err := adm.FetchOffsets(fctx, g.name)
			if err == nil {
				err = r.Error()
			}
			if err != nil {
				return err
			}
			m := map[int32]int64{}
			r.Each(func(o kadm.OffsetResponse) {
				if o.Topic == topic && o.At >= 0 {
					m[o.Partition] = o.At
				}
			})
			out[g.name] = m
			return nil
		})
	}
	return out
}

// waitCaughtUp waits until every group has committed the whole log, and
// returns the groups that did not within d.
func waitCaughtUp(ctx context.Context, adm *kadm.Client, hwm map[int32]int64, d time.Duration) []string {
	deadline := time.Now().Add(d)
	var behind []string
	for {
		behind = behind[:0]
		for _, g := range groups {
			fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			r, err := adm.FetchOffsets(fctx, g.name)
			cancel()
			if err == nil {
				err = r.Error()
			}
			if err != nil {
				behind = append(behind, fmt.Sprintf("%s: committed offsets not readable: %v", g.name, err))
				continue
			}
			var lag []string
			for _, p := range slices.Sorted(maps.Keys(hwm)) {
				o, ok := r.Lookup(topic, p)
				if !ok || o.At < hwm[p] {
					at := int64(-1)
					if ok {
						at = o.At
					}
					lag = append(lag, fmt.Sprintf("partition %d at %d of %d", p, at, hwm[p]))
				}
			}
			if len(lag) > 0 {
				behind = append(behind, fmt.Sprintf("%s did not commit the whole log within %v of the heal: %s", g.name, d, strings.Join(lag, ", ")))
			}
		}
		if len(behind) == 0 || time.Now().After(deadline) {
			return behind
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// finalRead reads every partition from offset 0 to its high watermark
// with a fresh client (no group), recording what it reads in h.
func finalRead(ctx context.Context, seeds []string, hwm map[int32]int64, h *history, d time.Duration) (map[position]string, []string) {
	offsets := map[int32]kgo.Offset{}
	for p := range hwm {
		offsets[p] = kgo.NewOffset().At(0)
	}
	log := map[position]string{}
	cl, err := newClient(seeds, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		return log, []string{"final reader: " + err.Error()}
	}
	defer cl.Close()
	next := map[int32]int64{}
	lastErr := map[int32]string{}
	done := func() bool {
		for p, hw := range hwm {
			if next[p] < hw {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(d)
	for !done() && time.Now().Before(deadline) {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		fs.EachError(func(_ string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				lastErr[p] = err.Error()
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			pos := position{r.Partition, r.Offset}
			log[pos] = string(r.Value)
			h.read("", 0, pos, string(r.Value))
			next[r.Partition] = max(next[r.Partition], r.Offset+1)
		})
	}
	var incomplete []string
	for _, p := range slices.Sorted(maps.Keys(hwm)) {
		if next[p] < hwm[p] {
			incomplete = append(incomplete, fmt.Sprintf("partition %d: the final read got to offset %d of %d in %v; last fetch error: %s", p, next[p], hwm[p], d, lastErr[p]))
		}
	}
	return log, incomplete
}
