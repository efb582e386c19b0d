// Package e2e runs the real streamhouse binary for end-to-end and
// compatibility tests: it builds it once per test binary, starts it on
// random ports with the backends a test asks for, waits until it is ready
// (from its JSON log), and stops it with a signal.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/objstore/objstoretest"
)

// Race builds the binary with the race detector (the default, for tests).
// Benchmarks set it to false before their first Start.
var Race = true

// build is one build of cmd/streamhouse, made once per test binary.
type build struct {
	once sync.Once
	path string
	err  error
}

var (
	raceOrPlain build // Binary
	noCgo       build // BinaryNoCgo
)

// Binary builds cmd/streamhouse (with the race detector if Race) once and returns
// its path.
func Binary(t testing.TB) string {
	t.Helper()
	var flags []string
	if Race {
		flags = append(flags, "-race")
	}
	return raceOrPlain.get(t, nil, flags)
}

// BinaryNoCgo builds cmd/streamhouse with CGO_ENABLED=0 once (no race
// detector, which needs cgo) and returns its path: a build without the
// engines that need cgo (SQL answers 501).
func BinaryNoCgo(t testing.TB) string {
	t.Helper()
	return noCgo.get(t, []string{"CGO_ENABLED=0"}, nil)
}

func (b *build) get(t testing.TB, env, flags []string) string {
	t.Helper()
	b.once.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		// One file per source tree and flavour, replaced by each build (a
		// rename: a server already started from the old file keeps
		// running), so test runs do not leave a 170 MB binary each in the
		// temporary folder.
		abs, err := filepath.Abs(root)
		if err != nil {
			b.err = err
			return
		}
		sum := sha256.Sum256([]byte(abs + "\x00" + strings.Join(env, " ") + "\x00" + strings.Join(flags, " ")))
		dir := filepath.Join(os.TempDir(), "streamhouse-e2e-bin")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.err = err
			return
		}
		// A name of this process's own (go build will not overwrite a
		// file that is not an executable, such as an empty temp file).
		tmp := filepath.Join(dir, fmt.Sprintf("build-%d-%d", os.Getpid(), time.Now().UnixNano()))
		args := append([]string{"build", "-o", tmp}, flags...)
		cmd := exec.Command("go", append(args, "./cmd/streamhouse")...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			os.Remove(tmp)
			b.err = fmt.Errorf("go build %v: %v\n%s", env, err, out)
			return
		}
		b.path = filepath.Join(dir, "streamhouse-"+hex.EncodeToString(sum[:8]))
		if err := os.Rename(tmp, b.path); err != nil {
			os.Remove(tmp)
			b.err = err
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// Backend is one storage setup: it returns the environment for a server
// whose files live in dir.
type Backend struct {
	Name string
	Env  func(t testing.TB, dir string) []string
}

// Local is the embedded defaults: local folder storage and SQLite.
var Local = Backend{"local-sqlite", func(t testing.TB, dir string) []string {
	return []string{
		"LOCAL_STORAGE_PATH=" + filepath.Join(dir, "storage"),
		"STREAMHOUSE_METADATA_PATH=" + filepath.Join(dir, "metadata.db"),
	}
}}

// S3Postgres is the S3 server (a fresh bucket) with PostgreSQL (a fresh
// database), from scripts/services.sh.
var S3Postgres = Backend{"s3-postgres", func(t testing.TB, dir string) []string {
	env := objstoretest.ReadS3Env(t)
	bucket := objstoretest.S3(t, nil).Bucket()
	return []string{
		"S3_ENDPOINT=" + env.Endpoint,
		"STREAMHOUSE_BUCKET=" + bucket,
		"AWS_ACCESS_KEY_ID=" + env.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + env.SecretKey,
		"DATABASE_URL=" + metadatatest.PostgresDatabase(t),
		"FLUSH_MIN_INTERVAL_MS=0",
	}
}}

// Backends is every backend the test matrix runs on.
func Backends() []Backend { return []Backend{Local, S3Postgres} }

// Proc is one running streamhouse process.
type Proc struct {
	t   testing.TB
	cmd *exec.Cmd
	URL string // REST base URL: https:// when TLS_CERT_FILE is in the env
	// Client is what Call uses: nil means http.DefaultClient; a test of a
	// TLS server sets one that trusts its CA.
	Client    *http.Client
	KafkaAddr string // Kafka listener host:port
	GRPCAddr  string // gRPC listener host:port
	// User and Password, when set, log Call in (HTTP Basic), for a
	// server with AUTH_ENABLED.
	User, Password string
	mu             sync.Mutex
	logs           bytes.Buffer
	done           chan struct{}
}

// Start runs the binary in dir with env (plus random ports, JSON logs and
// a cache under dir) and waits until it is ready.
func Start(t testing.TB, dir string, env []string) *Proc {
	t.Helper()
	return StartBinary(t, Binary(t), dir, env)
}

// StartBinary is Start with the binary at bin (BinaryNoCgo, say).
func StartBinary(t testing.TB, bin, dir string, env []string) *Proc {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"HTTP_ADDR=127.0.0.1:0", "GRPC_ADDR=127.0.0.1:0", "KAFKA_ADDR=127.0.0.1:0",
		"STREAMHOUSE_AGENT_ID=e2e", "LOG_FORMAT=json", "STREAMHOUSE_CACHE="+filepath.Join(dir, "cache"))
	cmd.Env = append(cmd.Env, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Proc{t: t, cmd: cmd, done: make(chan struct{})}
	type ready struct{ http, kafka, grpc string }
	readyc := make(chan ready, 1)
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.logs.WriteString(line + "\n")
			p.mu.Unlock()
			var rec struct {
				Msg   string `json:"msg"`
				HTTP  string `json:"http"`
				Kafka string `json:"kafka"`
				GRPC  string `json:"grpc"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "streamhouse ready to serve" {
				readyc <- ready{rec.HTTP, rec.Kafka, rec.GRPC}
			}
		}
	}()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
			_ = p.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("server logs:\n%s", p.Logs())
		}
	})
	select {
	case r := <-readyc:
		p.URL = "http://" + r.http
		for _, kv := range env {
			if strings.HasPrefix(kv, "TLS_CERT_FILE=") {
				p.URL = "https://" + r.http
			}
		}
		p.KafkaAddr = r.kafka
		p.GRPCAddr = r.grpc
	case <-p.done:
		_ = cmd.Wait()
		t.Fatalf("server exited before ready:\n%s", p.Logs())
	case <-time.After(60 * time.Second):
		t.Fatalf("server not ready in 60s:\n%s", p.Logs())
	}
	return p
}

// Logs returns what the server has logged so far.
func (p *Proc) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// Stop sends sig and waits for the process to exit; after SIGTERM the exit
// must be clean.
func (p *Proc) Stop(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
	<-p.done
	err := p.cmd.Wait()
	if sig == syscall.SIGTERM && err != nil {
		p.t.Fatalf("graceful stop: %v\n%s", err, p.Logs())
	}
}

// Call does one JSON request and decodes the answer into out (if not nil).
// It returns the HTTP status.
func (p *Proc) Call(method, path string, body any, out any) int {
	p.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			p.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, p.URL+path, rd)
	if err != nil {
		p.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := p.Client
	if hc == nil {
		hc = http.DefaultClient
	}
	if p.User != "" {
		req.SetBasicAuth(p.User, p.Password)
	}
	resp, err := hc.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			p.t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode
}
