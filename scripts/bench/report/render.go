package main

import (
	"fmt"
	"math"
	"strings"
)

func f0(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return groupThousands(fmt.Sprintf("%.0f", v))
}

func f1(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.1f", v)
}

func f2(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.2f", v)
}

func groupThousands(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// mmm shows min / median / max.
func mmm(s stats, f func(float64) string) string {
	return fmt.Sprintf("%s / **%s** / %s", f(s.min), f(s.med), f(s.max))
}

func ratio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func render(ts []*target, facts map[string]string, keys []string, commands, img string) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("# Benchmark results")
	p("")
	p("Written by `scripts/bench/run.sh` (with `scripts/bench/report`) on %s; do not edit by hand, run the script again.", facts["date"])
	p("Every target ran on this machine in the same run, %s times each with a fresh server per run; cells show **min / median / max** over the runs.",
		facts["runs"])
	p("Workload: %s records of %s bytes (random, incompressible), acks=all, %s partitions for the Kafka targets (one stream for NATS); then consume them all from the start; then produce for %s s at 10%% of that run's full-speed rate.",
		f0(num(facts["records"])), facts["record_size"], facts["partitions"], facts["rate_seconds"])
	p("MB is 10^6 bytes of record values. Kafka targets are driven by `streamctl perf` (franz-go); NATS JetStream by its own `nats bench`.")
	p("")
	p("Reading these numbers:")
	p("")
	p("- Everything shares one machine: the load generator (`streamctl perf` or `nats bench`) takes CPU from the server it measures, so on a small machine the client is part of every number.")
	p("- Durability differs. StreamHouse acknowledges acks=all once the data is in an object in the object store and committed in the metadata store. kfake keeps everything in memory (hence its RSS). NATS 2.9 JetStream's file store acknowledges once the write is in the OS page cache and syncs to disk on an interval (2 minutes by default). The PostgreSQL of the s3 target runs with `fsync=off` (as `scripts/services.sh` starts it for tests).")
	p("- kfake's fixed-rate tail (after a million records) comes from its garbage-collected in-memory log of several GiB, not from the network.")
	p("")
	p("## Machine and versions")
	p("")
	p("| fact | value |")
	p("|---|---|")
	for _, k := range keys {
		switch k {
		case "runs", "records", "record_size", "partitions", "rate_seconds":
			continue
		}
		p("| %s | %s |", k, strings.ReplaceAll(facts[k], "|", "\\|"))
	}
	p("")

	p("## Produce, full speed (1 KiB, acks=all)")
	p("")
	p("![throughput](%s/bench-throughput.png)", img)
	p("")
	p("| target | records/s | MB/s | p50 ms | p99 ms | max ms |")
	p("|---|---|---|---|---|---|")
	for _, t := range ts {
		p("| %s | %s | %s | %s | %s | %s |", t.label, mmm(pick(t.produce, recordsSec), f0), mmm(pick(t.produce, mbSec), f1),
			mmm(pick(t.produce, latOf(func(l *latency) float64 { return l.p50 })), f2),
			mmm(pick(t.produce, latOf(func(l *latency) float64 { return l.p99 })), f2),
			mmm(pick(t.produce, latOf(func(l *latency) float64 { return l.max })), f2))
	}
	p("")
	p("At full speed the producer keeps up to 10,000 records buffered, so these latencies are mostly queueing: the fixed-rate table below is the one that measures latency. NATS's latencies are as `nats bench js pub async` reports them (per asynchronous batch of 500).")
	p("")

	p("## Consume from the start")
	p("")
	p("| target | records/s | MB/s |")
	p("|---|---|---|")
	for _, t := range ts {
		p("| %s | %s | %s |", t.label, mmm(pick(t.consume, recordsSec), f0), mmm(pick(t.consume, mbSec), f1))
	}
	p("")
	p("NATS consumes with an ordered ephemeral consumer (`nats bench js ordered`).")
	p("")

	p("## Produce at 10%% of full speed: latency")
	p("")
	p("![latency CDF](%s/bench-latency-cdf.png)", img)
	p("")
	p("| target | records/s asked | records/s got | p50 ms | p99 ms | p99.9 ms | max ms |")
	p("|---|---|---|---|---|---|---|")
	for _, t := range ts {
		p("| %s | %s | %s | %s | %s | %s | %s |", t.label, mmm(summarize(t.rateTarget), f0), mmm(pick(t.rate, recordsSec), f0),
			mmm(pick(t.rate, latOf(func(l *latency) float64 { return l.p50 })), f2),
			mmm(pick(t.rate, latOf(func(l *latency) float64 { return l.p99 })), f2),
			mmm(pick(t.rate, latOf(func(l *latency) float64 { return l.p999 })), f2),
			mmm(pick(t.rate, latOf(func(l *latency) float64 { return l.max })), f2))
	}
	p("")
	p("Kafka targets: each record's time from its Produce call to its ack. NATS: as `nats bench js pub async --batch 10 --throughput` reports it, per asynchronous batch of 10 (from the first publish of a batch to its last ack; 10 records take about 1 ms to arrive at these rates). The chart shows each target's median run (by p99).")
	p("")
	stageRows := false
	for _, t := range ts {
		stageRows = stageRows || len(t.stages) > 0
	}
	if stageRows {
		p("Inside StreamHouse during the same fixed-rate runs, from its own histograms (`/metrics` read before and after each run; p50 / p99 in ms, interpolated within buckets, median over the runs): a durable append is the storage engine's whole share of a record's latency (waiting for the seal, the PUT, the commit); the rest of the client's latency is the Kafka client, the network and the two sharing the machine's cores.")
		p("")
		p("| target | durable append p50 / p99 | PUT p50 / p99 | metadata commit p50 / p99 |")
		p("|---|---|---|---|")
		for _, t := range ts {
			if len(t.stages) == 0 {
				continue
			}
			cell := func(stage string) string {
				var p50, p99 []float64
				for _, st := range t.stages {
					if v, ok := st[stage]; ok {
						p50, p99 = append(p50, v.p50), append(p99, v.p99)
					}
				}
				if len(p50) == 0 {
					return "–"
				}
				return fmt.Sprintf("%.2f / %.2f", summarize(p50).med, summarize(p99).med)
			}
			p("| %s | %s | %s | %s |", t.label, cell("append"), cell("put"), cell("commit"))
		}
		p("")
	}

	p("## Server process")
	p("")
	p("| target | peak RSS MiB (VmHWM) | cold start to ready ms (log `startup`) | CPU busy before the runs, %% |")
	p("|---|---|---|---|")
	for _, t := range ts {
		rss := summarize(t.rssKiB)
		rss = stats{rss.min / 1024, rss.med / 1024, rss.max / 1024}
		start := "–"
		if len(t.startupMs) > 0 {
			start = mmm(summarize(t.startupMs), f1)
		}
		busy := "–"
		if len(t.busyPct) > 0 {
			busy = mmm(summarize(t.busyPct), f0)
		}
		p("| %s | %s | %s | %s |", t.label, mmm(rss, f0), start, busy)
	}
	p("")
	p("Peak RSS is read from /proc/PID/status at the end of each run (all three phases). The machine may be shared: before each run the script waits (up to `--idle-wait` seconds) for it to be under 25%% busy, and the last column is how busy it was over the second before the run started.")
	p("")

	ratios(&b, ts)
	p("## Commands")
	p("")
	p("The first run's commands (`$BENCH_WORK` is the script's scratch folder; ports are random):")
	p("")
	p("```")
	b.WriteString(commands)
	p("```")
	return b.String()
}

func num(s string) float64 {
	var v float64
	if _, err := fmt.Sscan(s, &v); err != nil {
		return math.NaN()
	}
	return v
}

// ratios compares StreamHouse with the peers (medians) and checks the
// targets of issue 7.
func ratios(b *strings.Builder, ts []*target) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }
	kf, nats := find(ts, "kfake"), find(ts, "nats")
	med := func(t *target, rs func(*target) []run, f func(run) float64) float64 {
		if t == nil {
			return math.NaN()
		}
		return pick(rs(t), f).med
	}
	prod := func(t *target) []run { return t.produce }
	cons := func(t *target) []run { return t.consume }
	p("## Ratios (medians)")
	p("")
	p("| StreamHouse backend | produce vs kfake | produce vs NATS | consume vs kfake | consume vs NATS |")
	p("|---|---|---|---|---|")
	for _, name := range []string{"local", "s3"} {
		t := find(ts, name)
		if t == nil {
			continue
		}
		p("| %s | %s | %s | %s | %s |", t.label,
			ratio(med(t, prod, mbSec), med(kf, prod, mbSec)), ratio(med(t, prod, mbSec), med(nats, prod, mbSec)),
			ratio(med(t, cons, mbSec), med(kf, cons, mbSec)), ratio(med(t, cons, mbSec), med(nats, cons, mbSec)))
	}
	p("")
	local := find(ts, "local")
	if local == nil {
		return
	}
	check := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	p("## Targets of issue 7 (local folder + SQLite)")
	p("")
	p("| target | goal | measured (median) | |")
	p("|---|---|---|---|")
	if kf != nil {
		r := med(local, prod, mbSec) / med(kf, prod, mbSec)
		p("| durable produce vs kfake | ≥ 0.9× | %.2f× | %s |", r, check(r >= 0.9))
		r = med(local, cons, mbSec) / med(kf, cons, mbSec)
		p("| consume vs kfake | ≥ 1.0× | %.2f× | %s |", r, check(r >= 1.0))
	}
	if nats != nil {
		r := med(local, prod, mbSec) / med(nats, prod, mbSec)
		p("| durable produce vs NATS async publish | ≥ 3× | %.2f× | %s |", r, check(r >= 3))
	}
	p99 := pick(local.rate, latOf(func(l *latency) float64 { return l.p99 })).med
	p("| p99 produce latency at 10%% load | ≤ 5 ms | %.2f ms | %s |", p99, check(p99 <= 5))
	if s3 := find(ts, "s3"); s3 != nil && len(s3.stages) > 0 {
		// "At most one PUT plus one commit": the client's p99 against the
		// p99 of a PUT plus the p99 of a commit in the same run.
		var bound []float64
		for _, st := range s3.stages {
			bound = append(bound, st["put"].p99+st["commit"].p99)
		}
		b := summarize(bound).med
		p99 := pick(s3.rate, latOf(func(l *latency) float64 { return l.p99 })).med
		p("| p99 produce latency at 10%% load, S3 + PostgreSQL | ≤ one PUT + one commit (p99 + p99 in the same runs: %.2f ms) | %.2f ms | %s |", b, p99, check(p99 <= b))
	}
	rss := summarize(local.rssKiB).max / 1024
	p("| peak RSS (max over runs) | ≤ 512 MiB | %.0f MiB | %s |", rss, check(rss <= 512))
	if len(local.startupMs) > 0 {
		st := summarize(local.startupMs).med
		p("| cold start to ready | ≤ 200 ms | %.1f ms | %s |", st, check(st <= 200))
	}
	p("")
}
