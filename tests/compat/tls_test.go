package compat

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamhouse/streamhouse/internal/e2e"
	"github.com/streamhouse/streamhouse/internal/testutil/testcerts"
)

// tlsServer is streamhouse with TLS on every listener, and the files a
// client needs: the CA, and a client certificate (CN "alice").
type tlsServer struct {
	*e2e.Proc
	ca                    *testcerts.CA
	caFile                string
	client                *testcerts.Pair
	clientCert, clientKey string
}

// startTLSServer runs streamhouse with a server certificate for the
// loopback addresses and, with mutual, client certificates required. On the
// local backend only: TLS does not touch storage.
func startTLSServer(t *testing.T, mutual bool) *tlsServer {
	t.Helper()
	dir := t.TempDir()
	s := &tlsServer{ca: testcerts.NewCA(t, "compat CA")}
	certFile, keyFile := s.ca.Server(t).Write(t, dir, "server")
	s.caFile = s.ca.Write(t, dir, "ca")
	s.client = s.ca.Client(t, "alice")
	s.clientCert, s.clientKey = s.client.Write(t, dir, "alice")
	env := append(e2e.Local.Env(t, dir), "TLS_CERT_FILE="+certFile, "TLS_KEY_FILE="+keyFile)
	if mutual {
		env = append(env, "TLS_CLIENT_CA_FILE="+s.caFile)
	}
	s.Proc = e2e.Start(t, dir, env)
	s.Proc.Client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: s.ca.ClientTLS(s.client)}}
	return s
}

func (s *tlsServer) createTopic(t *testing.T, name string) {
	t.Helper()
	if code := s.Call("POST", "/api/v1/topics", map[string]any{"name": name, "partitions": 1}, nil); code != 201 {
		t.Fatalf("create topic %s: HTTP %d", name, code)
	}
}

// tlsKV is one record of a TLS round trip.
type tlsKV struct{ Key, Value string }

func tlsRecords(n int) []tlsKV {
	out := make([]tlsKV, n)
	for i := range out {
		out[i] = tlsKV{fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i)}
	}
	return out
}

func sameRecords(t *testing.T, client string, got, want []tlsKV) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s read back %v, produced %v", client, got, want)
	}
}

// Real Kafka clients over SSL against the real binary: franz-go, sarama
// (Go's crypto/tls), kcat and confluent-kafka-python (librdkafka with
// OpenSSL, security.protocol=ssl). Each produces to its own topic and
// reads it back. With mutual TLS each presents a client certificate, and
// librdkafka without one is refused.
func TestTLSKafkaClients(t *testing.T) {
	t.Parallel()
	const n = 20
	py := confluentPython(t)
	needTool(t, "kcat")
	for _, mutual := range []bool{false, true} {
		t.Run(map[bool]string{false: "tls", true: "mutual-tls"}[mutual], func(t *testing.T) {
			t.Parallel()
			s := startTLSServer(t, mutual)
			var cert *testcerts.Pair
			var kcatCert []string
			var pyCert []string
			if mutual {
				cert = s.client
				kcatCert = []string{"-X", "ssl.certificate.location=" + s.clientCert, "-X", "ssl.key.location=" + s.clientKey}
				pyCert = []string{s.clientCert, s.clientKey}
			}
			want := tlsRecords(n)

			t.Run("franz-go", func(t *testing.T) {
				s.createTopic(t, "franz")
				cl, err := kgo.NewClient(kgo.SeedBrokers(s.KafkaAddr), kgo.DialTLSConfig(s.ca.ClientTLS(cert)),
					kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"franz": {0: kgo.NewOffset().AtStart()}}))
				if err != nil {
					t.Fatal(err)
				}
				defer cl.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				for _, r := range want {
					if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "franz", Key: []byte(r.Key), Value: []byte(r.Value)}).FirstErr(); err != nil {
						t.Fatal(err)
					}
				}
				var got []tlsKV
				for len(got) < n && ctx.Err() == nil {
					fs := cl.PollFetches(ctx)
					fs.EachRecord(func(r *kgo.Record) { got = append(got, tlsKV{string(r.Key), string(r.Value)}) })
				}
				sameRecords(t, "franz-go", got, want)
			})

			t.Run("sarama", func(t *testing.T) {
				s.createTopic(t, "sarama")
				cfg := saramaConfig()
				cfg.Net.TLS.Enable = true
				cfg.Net.TLS.Config = s.ca.ClientTLS(cert)
				client := saramaClient(t, s.KafkaAddr, cfg)
				prod, err := sarama.NewSyncProducerFromClient(client)
				if err != nil {
					t.Fatal(err)
				}
				defer prod.Close()
				for _, r := range want {
					if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: "sarama", Partition: 0,
						Key: sarama.StringEncoder(r.Key), Value: sarama.StringEncoder(r.Value)}); err != nil {
						t.Fatal(err)
					}
				}
				var got []tlsKV
				for _, m := range consumePartition(t, client, "sarama", 0, sarama.OffsetOldest, n, 60*time.Second) {
					got = append(got, tlsKV{string(m.Key), string(m.Value)})
				}
				sameRecords(t, "sarama", got, want)
			})

			t.Run("kcat", func(t *testing.T) {
				s.createTopic(t, "kcat")
				ssl := append([]string{"-b", s.KafkaAddr, "-X", "security.protocol=ssl", "-X", "ssl.ca.location=" + s.caFile}, kcatCert...)
				var in strings.Builder
				for _, r := range want {
					fmt.Fprintf(&in, "%s\t%s\n", r.Key, r.Value)
				}
				run(t, 60*time.Second, in.String(), "kcat", append(ssl, "-P", "-t", "kcat", "-p", "0", "-K", "\t")...)
				out := run(t, 60*time.Second, "", "kcat", append(ssl, "-C", "-t", "kcat", "-p", "0", "-o", "beginning", "-e", "-J", "-q")...)
				var got []tlsKV
				sc := bufio.NewScanner(bytes.NewReader(out))
				for sc.Scan() {
					if len(bytes.TrimSpace(sc.Bytes())) == 0 {
						continue
					}
					var r kcatRecord
					if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
						t.Fatalf("kcat output %q: %v", sc.Text(), err)
					}
					if r.Key == nil || r.Payload == nil {
						t.Fatalf("kcat read a null key or value: %s", sc.Text())
					}
					got = append(got, tlsKV{*r.Key, *r.Payload})
				}
				sameRecords(t, "kcat", got, want)
				if mutual {
					// Without a client certificate librdkafka is refused.
					noCert := []string{"-b", s.KafkaAddr, "-X", "security.protocol=ssl", "-X", "ssl.ca.location=" + s.caFile, "-L", "-m", "5"}
					if out, err := runErr(30*time.Second, "", "kcat", noCert...); err == nil {
						t.Fatalf("kcat without a client certificate listed metadata:\n%s", out)
					}
				}
				// Plaintext librdkafka to the TLS port gets nothing.
				plain := []string{"-b", s.KafkaAddr, "-L", "-m", "5"}
				if out, err := runErr(30*time.Second, "", "kcat", plain...); err == nil {
					t.Fatalf("plaintext kcat listed metadata:\n%s", out)
				}
			})

			t.Run("confluent-kafka-python", func(t *testing.T) {
				s.createTopic(t, "python")
				script, err := filepath.Abs(filepath.Join("python", "tls_roundtrip.py"))
				if err != nil {
					t.Fatal(err)
				}
				out := run(t, 120*time.Second, "", py, append([]string{script, s.KafkaAddr, "python", fmt.Sprint(n), s.caFile}, pyCert...)...)
				var sum struct {
					Produced []int64 `json:"produced"`
					Consumed []struct {
						Offset     int64 `json:"offset"`
						Key, Value string
					} `json:"consumed"`
					Errors []string `json:"errors"`
				}
				if err := json.Unmarshal(out, &sum); err != nil {
					t.Fatalf("python output %q: %v", out, err)
				}
				if len(sum.Errors) > 0 || len(sum.Produced) != n {
					t.Fatalf("python: produced %d of %d, errors %q", len(sum.Produced), n, sum.Errors)
				}
				var got []tlsKV
				for i, c := range sum.Consumed {
					if c.Offset != int64(i) {
						t.Fatalf("python read offset %d at position %d", c.Offset, i)
					}
					got = append(got, tlsKV{c.Key, c.Value})
				}
				sameRecords(t, "confluent-kafka-python", got, want)
			})
		})
	}
}
