package main

import (
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/streamhouse/streamhouse/internal/e2e"
	"github.com/streamhouse/streamhouse/internal/testutil/testcerts"
)

// BenchmarkKafkaProduceTLS compares Kafka produce over plaintext, over
// TLS, mutual TLS, and TLS with SCRAM-SHA-512 logins (SASL_SSL) against the
// real binary (no race detector) on the embedded defaults: a franz-go
// producer, 1 KiB incompressible records, acks=all, 8 partitions. It
// reports MB/s and the p99 from Produce to its acknowledgement, the
// server's CPU time per MB produced (from its process_cpu_seconds_total),
// which a loaded machine disturbs less than throughput, and the MB/s of a
// consumer then reading the records back over the same kind of
// connection. -count repeats each variant before the next, so run the
// command several times to interleave them:
//
//	for i in 1 2 3; do go test -run '^$' -bench KafkaProduceTLS -benchtime 20000x ./cmd/streamhouse; done
func BenchmarkKafkaProduceTLS(b *testing.B) {
	e2e.Race = false
	for _, mode := range []string{"plaintext", "tls", "mtls", "tls-scram"} {
		b.Run(mode, func(b *testing.B) {
			dir := b.TempDir()
			env := e2e.Local.Env(b, dir)
			var opts []kgo.Opt
			hc := http.DefaultClient
			if mode == "tls-scram" {
				env = append(env, "AUTH_ENABLED=true", "AUTH_BOOTSTRAP_USERS=bench:bench-secret", "SUPER_USERS=bench")
				opts = append(opts, kgo.SASL(scram.Auth{User: "bench", Pass: "bench-secret"}.AsSha512Mechanism()))
			}
			if mode != "plaintext" {
				ca := testcerts.NewCA(b, "bench CA")
				cert, key := ca.Server(b).Write(b, dir, "server")
				env = append(env, "TLS_CERT_FILE="+cert, "TLS_KEY_FILE="+key)
				var client *testcerts.Pair
				if mode == "mtls" {
					env = append(env, "TLS_CLIENT_CA_FILE="+ca.Write(b, dir, "ca"))
					client = ca.Client(b, "bench")
				}
				opts = append(opts, kgo.DialTLSConfig(ca.ClientTLS(client)))
				hc = &http.Client{Transport: &http.Transport{TLSClientConfig: ca.ClientTLS(client)}}
			}
			s := e2e.Start(b, dir, env)
			cl, err := kgo.NewClient(append(opts, kgo.SeedBrokers(s.KafkaAddr), kgo.DefaultProduceTopic("bench"),
				kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression()))...)
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			if _, err := kadm.NewClient(cl).CreateTopic(ctx, 8, 1, nil, "bench"); err != nil {
				b.Fatal(err)
			}
			random := make([]byte, 1<<20+1024)
			if _, err := rand.Read(random); err != nil {
				b.Fatal(err)
			}
			produce := func(n int) []time.Duration {
				lat := make([]time.Duration, n)
				errc := make(chan error, 1)
				for i := range n {
					start := time.Now()
					at := (i * 4099) % (1 << 20)
					cl.Produce(ctx, &kgo.Record{Value: random[at : at+1024]}, func(_ *kgo.Record, err error) {
						lat[i] = time.Since(start)
						if err != nil {
							select {
							case errc <- err:
							default:
							}
						}
					})
				}
				if err := cl.Flush(ctx); err != nil {
					b.Fatal(err)
				}
				select {
				case err := <-errc:
					b.Fatal(err)
				default:
				}
				return lat
			}
			produce(1000) // connect and warm up
			b.SetBytes(1024)
			cpu0 := serverCPU(b, hc, s.URL)
			b.ResetTimer()
			lat := produce(b.N)
			b.StopTimer()
			cpu := serverCPU(b, hc, s.URL) - cpu0
			b.ReportMetric(cpu*1000/(float64(b.N)*1024/1e6), "server-cpu-ms/MB")
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(consumeMBs(b, ctx, append(opts, kgo.SeedBrokers(s.KafkaAddr), kgo.ConsumeTopics("bench"),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())), b.N+1000), "consume-MB/s")
		})
	}
}

// consumeMBs reads n records of 1 KiB with a new client made of opts and
// returns the MB/s from its first fetch to its last record.
func consumeMBs(b *testing.B, ctx context.Context, opts []kgo.Opt, n int) float64 {
	b.Helper()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	start, got := time.Now(), 0
	for got < n {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			b.Fatalf("consume after %d of %d records: %v", got, n, err)
		}
		got += fs.NumRecords()
	}
	return float64(got) * 1024 / 1e6 / time.Since(start).Seconds()
}

// BenchmarkSCRAMConnectionSetup measures how many new Kafka connections a
// second the server takes when each logs in with SCRAM-SHA-512 at the
// default iteration count (AUTH_SCRAM_ITERATIONS), over TLS and over
// plaintext: each iteration opens a new client, logs in and answers one
// request (ApiVersions, SaslHandshake, SaslAuthenticate twice, then the ApiVersions of kgo.Client.Ping).
//
//	go test -run '^$' -bench SCRAMConnectionSetup -benchtime 200x ./cmd/streamhouse
func BenchmarkSCRAMConnectionSetup(b *testing.B) {
	e2e.Race = false
	for _, mode := range []string{"sasl_plaintext", "sasl_ssl"} {
		b.Run(mode, func(b *testing.B) {
			dir := b.TempDir()
			env := append(e2e.Local.Env(b, dir), "AUTH_ENABLED=true", "AUTH_BOOTSTRAP_USERS=bench:bench-secret")
			opts := []kgo.Opt{kgo.SASL(scram.Auth{User: "bench", Pass: "bench-secret"}.AsSha512Mechanism())}
			if mode == "sasl_ssl" {
				ca := testcerts.NewCA(b, "bench CA")
				cert, key := ca.Server(b).Write(b, dir, "server")
				env = append(env, "TLS_CERT_FILE="+cert, "TLS_KEY_FILE="+key)
				opts = append(opts, kgo.DialTLSConfig(ca.ClientTLS(nil)))
			}
			s := e2e.Start(b, dir, env)
			opts = append(opts, kgo.SeedBrokers(s.KafkaAddr))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			b.ResetTimer()
			for range b.N {
				cl, err := kgo.NewClient(opts...)
				if err != nil {
					b.Fatal(err)
				}
				if err := cl.Ping(ctx); err != nil {
					b.Fatal(err)
				}
				cl.Close()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "connections/s")
		})
	}
}

// serverCPU reads the server's process_cpu_seconds_total from /metrics.
func serverCPU(b *testing.B, hc *http.Client, url string) float64 {
	b.Helper()
	resp, err := hc.Get(url + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "process_cpu_seconds_total "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				b.Fatal(err)
			}
			return f
		}
	}
	b.Fatal("no process_cpu_seconds_total on /metrics")
	return 0
}
