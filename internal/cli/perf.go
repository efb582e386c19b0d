package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The perf commands are load tools in the spirit of Kafka's
// kafka-producer-perf-test and kafka-consumer-perf-test. Unlike every other
// command they speak the Kafka protocol (through franz-go), so they work
// against any Kafka-compatible server.

const defaultBrokers = "localhost:9092"

const perfLong = `Load tools that speak the Kafka protocol (through franz-go), so they
work against StreamHouse's Kafka port and any other Kafka-compatible
server (--brokers, default ` + defaultBrokers + `).

While they run they print a progress line a second to stderr (when it is a
terminal, or with --progress); at the end a summary: records, bytes,
elapsed time, records/s, MB/s (10^6 bytes of keys and values a second)
and latency percentiles. --output json prints the summary as JSON.`

func (inv *invocation) perfCmd() *cobra.Command {
	c := group("perf", "Load-test a Kafka-compatible server (produce, consume)",
		inv.perfProduceCmd(), inv.perfConsumeCmd())
	c.Long = perfLong
	return c
}

// perfCommon are the flags both perf commands take.
type perfCommon struct {
	brokers  string
	topic    string
	records  int64
	duration time.Duration
	progress bool
}

func (pc *perfCommon) addFlags(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&pc.brokers, "brokers", defaultBrokers, "bootstrap brokers, host:port[,host:port...]")
	fs.StringVar(&pc.topic, "topic", "", "topic (required)")
	fs.Int64Var(&pc.records, "num-records", 0, "stop after this many records")
	fs.DurationVar(&pc.duration, "duration", 0, "stop after this long (e.g. 30s)")
	fs.BoolVar(&pc.progress, "progress", false, "print a progress line a second to stderr even when it is not a terminal")
}

func (pc *perfCommon) validate(cmd *cobra.Command) error {
	if err := requireFlags(cmd, "topic"); err != nil {
		return err
	}
	if pc.records < 0 || pc.duration < 0 {
		return usagef("%s: --num-records and --duration must not be negative", cmdPath(cmd))
	}
	if pc.records == 0 && pc.duration == 0 {
		return usagef("%s: give --num-records or --duration (usage: %s)", cmdPath(cmd), cmd.UseLine())
	}
	if strings.TrimSpace(pc.brokers) == "" {
		return usagef("%s: --brokers is empty", cmdPath(cmd))
	}
	return nil
}

func (pc *perfCommon) seeds() []string {
	var out []string
	for _, b := range strings.Split(pc.brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// done tells whether a run of n records, started at start, is over.
func (pc *perfCommon) done(n int64, start time.Time) bool {
	return (pc.records > 0 && n >= pc.records) || (pc.duration > 0 && time.Since(start) >= pc.duration)
}

func (inv *invocation) showProgress(pc *perfCommon) bool {
	return pc.progress || isTerminal(inv.s.stderr)
}

const perfProduceLong = `Produces records of --record-size random (incompressible) bytes, as fast
as the server takes them or at --throughput records a second, and reports
throughput and the latency of each record from its Produce call to its
acknowledgement.

The topic is created with --partitions partitions if it does not exist.
--acks all (the default) uses franz-go's idempotent producer; 1 and 0
turn idempotence off, as Kafka requires.`

func (inv *invocation) perfProduceCmd() *cobra.Command {
	var (
		pc            perfCommon
		recordSize    int
		throughput    int64
		acks          string
		partitions    int32
		compression   string
		linger        time.Duration
		batchMaxBytes int32
	)
	cmd := &cobra.Command{
		Use:   "produce --topic T (--num-records N | --duration D) [flags]",
		Short: "Produce records as fast as possible or at a fixed rate; report throughput and ack latency",
		Long:  perfProduceLong,
		Example: `  streamctl perf produce --topic bench --num-records 1000000 --record-size 1024
  streamctl perf produce --brokers kafka:9092 --topic bench --duration 30s --throughput 10000 --acks 1 -o json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := pc.validate(cmd); err != nil {
				return err
			}
			if recordSize < 0 {
				return usagef("--record-size must not be negative")
			}
			if throughput == 0 || throughput < -1 {
				return usagef("--throughput %d: give records a second, or -1 for no limit", throughput)
			}
			if partitions < 1 {
				return usagef("--partitions %d: at least 1", partitions)
			}
			if batchMaxBytes < 1 {
				return usagef("--batch-max-bytes %d: at least 1", batchMaxBytes)
			}
			opts := []kgo.Opt{kgo.SeedBrokers(pc.seeds()...), kgo.DefaultProduceTopic(pc.topic),
				kgo.ProducerLinger(linger), kgo.ProducerBatchMaxBytes(batchMaxBytes)}
			switch strings.ToLower(acks) {
			case "all", "-1":
				opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
			case "1":
				opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
			case "0":
				opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
			default:
				return usagef("--acks %q: use all, 1 or 0", acks)
			}
			codec, ok := compressionCodecs[strings.ToLower(compression)]
			if !ok {
				return usagef("--compression %q: use none, gzip, snappy, lz4 or zstd", compression)
			}
			opts = append(opts, kgo.ProducerBatchCompression(codec))
			ctx := cmd.Context()
			cl, err := kgo.NewClient(opts...)
			if err != nil {
				return fmt.Errorf("kafka client: %w", err)
			}
			defer cl.Close()
			if err := ensureTopic(ctx, cl, pc.topic, partitions); err != nil {
				return err
			}
			stats := newPerfStats()
			stopProgress := func() {}
			if inv.showProgress(&pc) {
				stopProgress = stats.progress(inv.s.stderr, "sent")
			}
			elapsed, runErr := perfProduce(ctx, cl, &pc, stats, recordSize, throughput)
			stopProgress()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			sum := stats.summary("produce", pc.brokers, pc.topic, elapsed, map[string]any{
				"record_size": recordSize, "num_records": pc.records, "duration_s": pc.duration.Seconds(),
				"throughput": throughput, "acks": acks, "partitions": partitions, "compression": compression,
				"linger_ms": float64(linger) / 1e6, "batch_max_bytes": batchMaxBytes,
			})
			if err := inv.out().perfSummary(sum); err != nil {
				return err
			}
			return runErr
		},
	}
	pc.addFlags(cmd)
	fs := cmd.Flags()
	fs.IntVar(&recordSize, "record-size", 1024, "bytes in each record's value")
	fs.Int64Var(&throughput, "throughput", -1, "target records a second; -1 for as fast as possible")
	fs.StringVar(&acks, "acks", "all", "acknowledgements: all, 1 or 0")
	fs.Int32Var(&partitions, "partitions", 1, "partitions of the topic, when it has to be created")
	fs.StringVar(&compression, "compression", "none", "batch compression: none, gzip, snappy, lz4 or zstd")
	fs.DurationVar(&linger, "linger", 0, "how long a batch may wait for more records")
	fs.Int32Var(&batchMaxBytes, "batch-max-bytes", 1000012, "largest batch sent to one partition, in bytes")
	setFlagCompletion(cmd, "acks", fixedCompletions("all", "1", "0"))
	setFlagCompletion(cmd, "compression", fixedCompletions("none", "gzip", "snappy", "lz4", "zstd"))
	return cmd
}

var compressionCodecs = map[string]kgo.CompressionCodec{
	"none":   kgo.NoCompression(),
	"gzip":   kgo.GzipCompression(),
	"snappy": kgo.SnappyCompression(),
	"lz4":    kgo.Lz4Compression(),
	"zstd":   kgo.ZstdCompression(),
}

// ensureTopic creates topic with partitions partitions unless it exists.
func ensureTopic(ctx context.Context, cl *kgo.Client, topic string, partitions int32) error {
	adm := kadm.NewClient(cl)
	tds, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return fmt.Errorf("list topic %s: %w", topic, err)
	}
	if td, ok := tds[topic]; ok && td.Err == nil {
		return nil
	}
	resp, err := adm.CreateTopic(ctx, partitions, -1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}

// perfProduce runs the produce loop and returns the time from the first
// Produce call to the last ack.
func perfProduce(ctx context.Context, cl *kgo.Client, pc *perfCommon, stats *perfStats, recordSize int, rate int64) (time.Duration, error) {
	// Values are windows of one random buffer: incompressible, and no
	// allocation per record.
	const window = 1 << 20
	random := make([]byte, window+recordSize)
	if _, err := rand.Read(random); err != nil {
		return 0, err
	}
	var (
		errMu    sync.Mutex
		firstErr error
	)
	start := time.Now()
	var n int64
	for ; !pc.done(n, start) && ctx.Err() == nil; n++ {
		if rate > 0 {
			// The schedule is absolute, so a late record is followed by
			// others at once until the run is back on schedule.
			due := start.Add(time.Duration(float64(n) / float64(rate) * float64(time.Second)))
			if wait := time.Until(due); wait > 0 {
				time.Sleep(wait)
			}
		}
		at := (n * 4099) % window
		sent := time.Now()
		rec := &kgo.Record{Value: random[at : at+int64(recordSize)], Timestamp: sent}
		cl.Produce(ctx, rec, func(r *kgo.Record, err error) {
			if err != nil {
				stats.errors.Add(1)
				errMu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				errMu.Unlock()
				return
			}
			stats.recordLatency(time.Since(sent))
			stats.records.Add(1)
			stats.bytes.Add(int64(len(r.Key) + len(r.Value)))
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return time.Since(start), err
	}
	elapsed := time.Since(start)
	errMu.Lock()
	defer errMu.Unlock()
	if firstErr != nil {
		return elapsed, fmt.Errorf("%d of %d records failed; the first: %w", stats.errors.Load(), n, firstErr)
	}
	return elapsed, nil
}

const perfConsumeLong = `Consumes a topic from its start, as fast as the server serves it, and
reports throughput. Without --group it reads every partition directly; with
--group it joins that consumer group (and commits its offsets).

It stops after --num-records records or --duration, or when no record has
arrived for --timeout (then, if --num-records was not reached, it fails
after printing the summary). The elapsed time runs from the first fetch to
the last record.

--latency also reports each record's end-to-end latency: from its
timestamp (when its producer created it; perf produce sets it) to its
arrival. It means something only while a producer runs at the same time on
a machine with the same clock.`

func (inv *invocation) perfConsumeCmd() *cobra.Command {
	var (
		pc            perfCommon
		groupID       string
		timeout       time.Duration
		latency       bool
		fetchMaxBytes int32
	)
	cmd := &cobra.Command{
		Use:   "consume --topic T (--num-records N | --duration D) [flags]",
		Short: "Consume a topic as fast as possible; report throughput (and end-to-end latency)",
		Long:  perfConsumeLong,
		Example: `  streamctl perf consume --topic bench --num-records 1000000
  streamctl perf consume --brokers kafka:9092 --topic bench --group perf --duration 30s --latency -o json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := pc.validate(cmd); err != nil {
				return err
			}
			if timeout <= 0 {
				return usagef("--timeout must be positive")
			}
			if fetchMaxBytes < 1 {
				return usagef("--fetch-max-bytes %d: at least 1", fetchMaxBytes)
			}
			opts := []kgo.Opt{kgo.SeedBrokers(pc.seeds()...), kgo.ConsumeTopics(pc.topic),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(fetchMaxBytes)}
			if groupID != "" {
				opts = append(opts, kgo.ConsumerGroup(groupID))
			}
			ctx := cmd.Context()
			cl, err := kgo.NewClient(opts...)
			if err != nil {
				return fmt.Errorf("kafka client: %w", err)
			}
			defer cl.Close()
			stats := newPerfStats()
			stopProgress := func() {}
			if inv.showProgress(&pc) {
				stopProgress = stats.progress(inv.s.stderr, "received")
			}
			elapsed, runErr := perfConsume(ctx, cl, &pc, stats, timeout, latency)
			stopProgress()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			sum := stats.summary("consume", pc.brokers, pc.topic, elapsed, map[string]any{
				"num_records": pc.records, "duration_s": pc.duration.Seconds(), "group": groupID,
				"timeout_s": timeout.Seconds(), "fetch_max_bytes": fetchMaxBytes,
			})
			if err := inv.out().perfSummary(sum); err != nil {
				return err
			}
			return runErr
		},
	}
	pc.addFlags(cmd)
	fs := cmd.Flags()
	fs.StringVar(&groupID, "group", "", "consumer group to join (default: none, read partitions directly)")
	fs.DurationVar(&timeout, "timeout", 10*time.Second, "stop when no record arrives for this long")
	fs.BoolVar(&latency, "latency", false, "report end-to-end latency from each record's timestamp")
	fs.Int32Var(&fetchMaxBytes, "fetch-max-bytes", 50<<20, "most bytes one fetch response may hold")
	setFlagCompletion(cmd, "group", inv.completeNames("group", true))
	return cmd
}

// perfConsume runs the poll loop and returns the time from the first poll
// to the last record.
func perfConsume(ctx context.Context, cl *kgo.Client, pc *perfCommon, stats *perfStats, timeout time.Duration, latency bool) (time.Duration, error) {
	start := time.Now()
	last := start
	for !pc.done(stats.records.Load(), start) {
		wait := timeout - time.Since(last)
		if pc.duration > 0 {
			wait = min(wait, pc.duration-time.Since(start))
		}
		if wait <= 0 {
			break
		}
		pollCtx, cancel := context.WithTimeout(ctx, wait)
		fetches := cl.PollFetches(pollCtx)
		cancel()
		if ctx.Err() != nil {
			return time.Since(start), ctx.Err()
		}
		var fetchErr error
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) && fetchErr == nil {
				fetchErr = fmt.Errorf("fetch %s/%d: %w", topic, p, err)
			}
		})
		if fetchErr != nil {
			return last.Sub(start), fetchErr
		}
		now := time.Now()
		var n, b int64
		fetches.EachRecord(func(r *kgo.Record) {
			n++
			b += int64(len(r.Key) + len(r.Value))
			if latency {
				stats.recordLatency(now.Sub(r.Timestamp))
			}
		})
		if n > 0 {
			stats.records.Add(n)
			stats.bytes.Add(b)
			last = now
		}
	}
	elapsed := last.Sub(start)
	if pc.duration > 0 && stats.records.Load() > 0 && time.Since(start) >= pc.duration {
		elapsed = time.Since(start)
	}
	if got := stats.records.Load(); pc.records > 0 && got < pc.records && pc.duration == 0 {
		return elapsed, fmt.Errorf("got %d of %d records: none arrived for %s", got, pc.records, timeout)
	}
	return elapsed, nil
}
