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

	"github.com/streamhouse/streamhouse/internal/e2e"
	"github.com/streamhouse/streamhouse/internal/testutil/testcerts"
)

// BenchmarkKafkaProduceTLS compares Kafka produce over plaintext and over
// TLS (and mutual TLS) against the real binary (no race detector) on the
// embedded defaults: a franz-go producer, 1 KiB incompressible records,
// acks=all, 8 partitions. It reports MB/s and the p99 from Produce to its
// acknowledgement, and the server's CPU time per MB produced (from its
// process_cpu_seconds_total), which a loaded machine disturbs less than
// throughput. -count repeats each variant before the next, so run the
// command several times to interleave them:
//
//	for i in 1 2 3; do go test -run '^$' -bench KafkaProduceTLS -benchtime 20000x ./cmd/streamhouse; done
func BenchmarkKafkaProduceTLS(b *testing.B) {
	e2e.Race = false
	for _, mode := range []string{"plaintext", "tls", "mtls"} {
		b.Run(mode, func(b *testing.B) {
			dir := b.TempDir()
			env := e2e.Local.Env(b, dir)
			var opts []kgo.Opt
			hc := http.DefaultClient
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
