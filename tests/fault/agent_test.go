package fault

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// agent is one streamhouse process, restartable on the same folder, agent
// ID and Kafka port (so clients find it again at the address they know).
// It reaches PostgreSQL and S3 through its own proxies.
type agent struct {
	id        string
	dir       string
	bin       string
	env       []string
	kafkaAddr string
	logPath   string
	pg, s3    *proxy

	mu        sync.Mutex
	proc      *child
	httpAddr  string
	expected  bool     // the current process is being stopped by the test
	unplanned []string // exits nobody asked for
}

// start runs the agent and waits (up to a minute) until it logs that it is
// ready to serve.
func (a *agent) start(ctx context.Context) error {
	logf, err := os.OpenFile(a.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(a.bin)
	cmd.Dir = a.dir
	cmd.Env = append(os.Environ(), a.env...)
	cmd.SysProcAttr = procAttr(nil)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		logf.Close()
		return err
	}
	cmd.Stdout = logf
	a.mu.Lock()
	a.expected = false
	a.mu.Unlock()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", a.id, err)
	}
	proc := &child{cmd: cmd, done: make(chan struct{})}
	ready := make(chan string, 1)
	go func() {
		defer close(proc.done)
		defer logf.Close()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			_, _ = logf.Write(append(line, '\n'))
			var rec struct {
				Msg  string `json:"msg"`
				HTTP string `json:"http"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "streamhouse ready to serve" {
				select {
				case ready <- rec.HTTP:
				default:
				}
			}
		}
		_, _ = io.Copy(logf, stderr) // a line over the scanner's limit
		err := cmd.Wait()
		a.mu.Lock()
		if !a.expected {
			a.unplanned = append(a.unplanned, fmt.Sprintf("%s: %s exited by itself: %v", time.Now().UTC().Format(time.TimeOnly), a.id, err))
		}
		a.mu.Unlock()
	}()
	a.mu.Lock()
	a.proc, a.httpAddr = proc, ""
	a.mu.Unlock()
	select {
	case h := <-ready:
		a.mu.Lock()
		a.httpAddr = h
		a.mu.Unlock()
		return nil
	case <-proc.done:
		return fmt.Errorf("%s exited before it was ready (log %s):\n%s", a.id, a.logPath, a.logTail(4096))
	case <-time.After(time.Minute):
		a.stop(syscall.SIGKILL)
		return fmt.Errorf("%s not ready within a minute (log %s):\n%s", a.id, a.logPath, a.logTail(4096))
	case <-ctx.Done():
		a.stop(syscall.SIGKILL)
		return ctx.Err()
	}
}

// stop sends sig to the agent and waits for it to exit.
func (a *agent) stop(sig syscall.Signal) {
	a.mu.Lock()
	proc := a.proc
	a.expected = true
	a.mu.Unlock()
	if proc == nil {
		return
	}
	_ = proc.signal(sig)
	if sig == syscall.SIGKILL {
		<-proc.done
		return
	}
	if !proc.wait(30 * time.Second) {
		proc.kill()
	}
}

// signal sends sig (SIGSTOP, SIGCONT) without waiting.
func (a *agent) signal(sig syscall.Signal) error {
	a.mu.Lock()
	proc := a.proc
	a.mu.Unlock()
	if proc == nil {
		return errors.New(a.id + " not started")
	}
	return proc.signal(sig)
}

// ready asks the agent's /ready endpoint.
func (a *agent) ready(ctx context.Context) error {
	a.mu.Lock()
	h := a.httpAddr
	a.mu.Unlock()
	if h == "" {
		return errors.New("not running")
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+h+"/ready", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/ready: %d %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

// logTail is the end of the agent's log (all its runs).
func (a *agent) logTail(n int64) string {
	f, err := os.Open(a.logPath)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > n {
		_, _ = f.Seek(fi.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// raceReports returns the data races the race detector reported in the
// agent's log (the binary is built with -race for tests).
func (a *agent) raceReports() []string {
	b, err := os.ReadFile(a.logPath)
	if err != nil {
		return nil
	}
	var out []string
	s := string(b)
	for {
		i := strings.Index(s, "WARNING: DATA RACE")
		if i < 0 {
			return out
		}
		s = s[i:]
		end := strings.Index(s, "==================")
		if end < 0 || end > 4000 {
			end = min(len(s), 4000)
		}
		out = append(out, s[:end])
		s = s[len("WARNING: DATA RACE"):]
	}
}

func agentEnv(id, dir, kafkaAddr, bucket string, pg, s3 *proxy, leaseTTL time.Duration) []string {
	return []string{
		"STREAMHOUSE_AGENT_ID=" + id,
		"KAFKA_ADDR=" + kafkaAddr,
		"HTTP_ADDR=127.0.0.1:0",
		"GRPC_ADDR=127.0.0.1:0",
		"LOG_FORMAT=json",
		"STREAMHOUSE_CACHE=" + filepath.Join(dir, "cache"),
		"S3_ENDPOINT=http://" + s3.Addr(),
		"STREAMHOUSE_BUCKET=" + bucket,
		"AWS_ACCESS_KEY_ID=" + s3AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s3SecretKey,
		"DATABASE_URL=postgres://postgres@" + pg.Addr() + "/postgres?sslmode=disable",
		fmt.Sprintf("LEASE_TTL_MS=%d", leaseTTL.Milliseconds()),
		// The smallest grace and a short interval, so garbage collection
		// runs (and can race slow commits) within a short run.
		"GC_GRACE_SECS=60",
		"GC_INTERVAL_SECS=5",
		// Object compaction every few seconds over small segments, so
		// index switches race faults, retention, GC and readers
		// (invariant 11).
		"COMPACTION_INTERVAL_SECS=3",
		"SEGMENT_MAX_SIZE=65536",
		"SEGMENT_MAX_AGE_MS=2000",
		// The write-ahead log on, in the agent's folder (kept across its
		// restarts): every kill -9 is followed by a replay, which must
		// never put a second record at a committed offset (invariant 10).
		"WAL_ENABLED=true",
		"WAL_DIR=" + filepath.Join(dir, "wal"),
	}
}
