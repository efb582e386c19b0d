package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
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
turn idempotence off, as Kafka requires.

--transaction-duration D produces in transactions (a transactional
producer, --transactional-id or a new id per run): each one is committed
after D, and waits for its commit before the next begins, as a
consume-transform-produce loop does. Records then count once committed,
and the summary adds the transactions and the latency of each commit:
EndTransaction alone, once the transaction's records are acknowledged
(what committing adds to a transaction).`

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
		txnDuration   time.Duration
		txnID         string
		maxInflight   int
	)
	cmd := &cobra.Command{
		Use:   "produce --topic T (--num-records N | --duration D) [flags]",
		Short: "Produce records as fast as possible or at a fixed rate; report throughput and ack latency",
		Long:  perfProduceLong,
		Example: `  streamctl perf produce --topic bench --num-records 1000000 --record-size 1024
  streamctl perf produce --brokers kafka:9092 --topic bench --duration 30s --throughput 10000 --acks 1 -o json
  streamctl perf produce --topic bench --duration 20s --transaction-duration 10ms`,
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
			if txnDuration < 0 {
				return usagef("--transaction-duration %v must not be negative", txnDuration)
			}
			opts := append([]kgo.Opt{}, kgo.SeedBrokers(pc.seeds()...), kgo.DefaultProduceTopic(pc.topic),
				kgo.ProducerLinger(linger), kgo.ProducerBatchMaxBytes(batchMaxBytes))
			if txnDuration > 0 {
				if a := strings.ToLower(acks); a != "all" && a != "-1" {
					return usagef("--transaction-duration needs --acks all (transactions are idempotent)")
				}
				if txnID == "" {
					txnID = fmt.Sprintf("streamctl-perf-%d-%d", os.Getpid(), time.Now().UnixNano())
				}
				opts = append(opts, kgo.TransactionalID(txnID))
			}
			if maxInflight < 1 {
				return usagef("--max-inflight %d: at least 1", maxInflight)
			}
			switch strings.ToLower(acks) {
			case "all", "-1":
				if maxInflight != 1 {
					// franz-go keeps one produce request in flight per
					// broker while idempotent (acks=all).
					return usagef("--max-inflight %d needs --acks 1 or 0 (an idempotent producer has one request in flight)", maxInflight)
				}
				opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
			case "1":
				opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(maxInflight))
			case "0":
				opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(maxInflight))
			default:
				return usagef("--acks %q: use all, 1 or 0", acks)
			}
			codec, ok := compressionCodecs[strings.ToLower(compression)]
			if !ok {
				return usagef("--compression %q: use none, gzip, snappy, lz4 or zstd", compression)
			}
			opts = append(opts, kgo.ProducerBatchCompression(codec))
			tlsOpts, err := inv.kafkaOpts()
			if err != nil {
				return err
			}
			opts = append(opts, tlsOpts...)
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
			var elapsed time.Duration
			var runErr error
			if txnDuration > 0 {
				elapsed, runErr = perfProduceTxn(ctx, cl, &pc, stats, recordSize, throughput, txnDuration)
			} else {
				elapsed, runErr = perfProduce(ctx, cl, &pc, stats, recordSize, throughput)
			}
			stopProgress()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			sum := stats.summary("produce", pc.brokers, pc.topic, elapsed, map[string]any{
				"record_size": recordSize, "num_records": pc.records, "duration_s": pc.duration.Seconds(),
				"throughput": throughput, "acks": acks, "partitions": partitions, "compression": compression,
				"linger_ms": float64(linger) / 1e6, "batch_max_bytes": batchMaxBytes,
				"transaction_ms": float64(txnDuration) / 1e6, "max_inflight": maxInflight,
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
	fs.DurationVar(&txnDuration, "transaction-duration", 0, "produce in transactions, each committed after this long (e.g. 10ms); 0: no transactions")
	fs.IntVar(&maxInflight, "max-inflight", 1, "produce requests in flight to one broker (Kafka's max.in.flight.requests.per.connection); more than 1 needs --acks 1 or 0")
	fs.StringVar(&txnID, "transactional-id", "", "transactional id with --transaction-duration (default: a new one per run)")
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
	sn, err := newPerfSender(cl, stats, recordSize, rate, true)
	if err != nil {
		return 0, err
	}
	for ; !pc.done(sn.n, sn.start) && ctx.Err() == nil; sn.n++ {
		sn.send(ctx)
	}
	if err := cl.Flush(ctx); err != nil {
		return time.Since(sn.start), err
	}
	return time.Since(sn.start), sn.err()
}

// perfProduceTxn is perfProduce in transactions of txnDuration each: a
// record counts once its transaction committed, and each commit's latency
// (EndTransaction, after Flush has every record acknowledged) is recorded.
func perfProduceTxn(ctx context.Context, cl *kgo.Client, pc *perfCommon, stats *perfStats, recordSize int, rate int64, txnDuration time.Duration) (time.Duration, error) {
	sn, err := newPerfSender(cl, stats, recordSize, rate, false)
	if err != nil {
		return 0, err
	}
	for !pc.done(sn.n, sn.start) && ctx.Err() == nil {
		if err := cl.BeginTransaction(); err != nil {
			return time.Since(sn.start), fmt.Errorf("begin transaction: %w", err)
		}
		began, from := time.Now(), sn.n
		for ; !pc.done(sn.n, sn.start) && time.Since(began) < txnDuration && ctx.Err() == nil; sn.n++ {
			sn.send(ctx)
		}
		err := cl.Flush(ctx)
		if err == nil {
			err = sn.err()
		}
		how := kgo.TryCommit
		if err != nil {
			how = kgo.TryAbort
		}
		commitStart := time.Now()
		if endErr := cl.EndTransaction(ctx, how); err == nil && endErr != nil {
			err = fmt.Errorf("commit transaction: %w", endErr)
		}
		if err != nil {
			return time.Since(sn.start), err
		}
		stats.recordCommit(time.Since(commitStart))
		stats.txns.Add(1)
		stats.records.Add(sn.n - from)
		stats.bytes.Add((sn.n - from) * int64(recordSize))
	}
	return time.Since(sn.start), nil
}

// perfSender produces the records of a perf run.
type perfSender struct {
	cl         *kgo.Client
	stats      *perfStats
	random     []byte
	recordSize int
	rate       int64
	count      bool // count records at their ack (else the caller counts)
	start      time.Time
	n          int64 // records sent

	errMu    sync.Mutex
	firstErr error
}

func newPerfSender(cl *kgo.Client, stats *perfStats, recordSize int, rate int64, count bool) (*perfSender, error) {
	// Values are windows of one random buffer: incompressible, and no
	// allocation per record.
	random := make([]byte, perfWindow+recordSize)
	if _, err := rand.Read(random); err != nil {
		return nil, err
	}
	return &perfSender{cl: cl, stats: stats, random: random, recordSize: recordSize, rate: rate, count: count, start: time.Now()}, nil
}

const perfWindow = 1 << 20

// send produces record number sn.n, on schedule when a rate is set.
func (sn *perfSender) send(ctx context.Context) {
	if sn.rate > 0 {
		// The schedule is absolute, so a late record is followed by
		// others at once until the run is back on schedule.
		due := sn.start.Add(time.Duration(float64(sn.n) / float64(sn.rate) * float64(time.Second)))
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
	}
	at := (sn.n * 4099) % perfWindow
	sent := time.Now()
	rec := &kgo.Record{Value: sn.random[at : at+int64(sn.recordSize)], Timestamp: sent}
	sn.cl.Produce(ctx, rec, func(r *kgo.Record, err error) {
		if err != nil {
			sn.stats.errors.Add(1)
			sn.errMu.Lock()
			if sn.firstErr == nil {
				sn.firstErr = err
			}
			sn.errMu.Unlock()
			return
		}
		sn.stats.recordLatency(time.Since(sent))
		if sn.count {
			sn.stats.records.Add(1)
			sn.stats.bytes.Add(int64(len(r.Key) + len(r.Value)))
		}
	})
}

// err is the first failed record's error, with the count.
func (sn *perfSender) err() error {
	sn.errMu.Lock()
	defer sn.errMu.Unlock()
	if sn.firstErr != nil {
		return fmt.Errorf("%d of %d records failed; the first: %w", sn.stats.errors.Load(), sn.n, sn.firstErr)
	}
	return nil
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
		isolation     string
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
			opts := append([]kgo.Opt{}, kgo.SeedBrokers(pc.seeds()...), kgo.ConsumeTopics(pc.topic),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(fetchMaxBytes))
			switch strings.ToLower(isolation) {
			case "read_uncommitted":
			case "read_committed":
				opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
			default:
				return usagef("--isolation %q: use read_uncommitted or read_committed", isolation)
			}
			if groupID != "" {
				opts = append(opts, kgo.ConsumerGroup(groupID))
			}
			tlsOpts, err := inv.kafkaOpts()
			if err != nil {
				return err
			}
			opts = append(opts, tlsOpts...)
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
				"timeout_s": timeout.Seconds(), "fetch_max_bytes": fetchMaxBytes, "isolation": isolation,
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
	fs.StringVar(&isolation, "isolation", "read_uncommitted", "read_uncommitted (everything) or read_committed (committed transactions only, up to the last stable offset)")
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
