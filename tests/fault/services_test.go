package fault

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/streamhouse/streamhouse/internal/objstore"
)

// This file runs the test's private PostgreSQL and S3 server (versitygw):
// the nemesis restarts and pauses them, which must not disturb other tests
// sharing the services of scripts/services.sh.

const (
	s3AccessKey = "fault"
	s3SecretKey = "fault-secret"
)

// tools are the service binaries, found the way scripts/services.sh
// installs them.
type tools struct {
	pgBin     string // directory with initdb and postgres
	versitygw string
}

// findTools locates the service binaries. Missing ones skip the test,
// or fail it when STREAMHOUSE_REQUIRE_SERVICES=1 (CI).
func findTools(t *testing.T) tools {
	t.Helper()
	var tl tools
	var missing []string
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(dirs) - 1; i >= 0; i-- { // the newest version first
		if isExecutable(filepath.Join(dirs[i], "initdb")) && isExecutable(filepath.Join(dirs[i], "postgres")) {
			tl.pgBin = dirs[i]
			break
		}
	}
	if tl.pgBin == "" {
		if p, err := exec.LookPath("initdb"); err == nil {
			tl.pgBin = filepath.Dir(p)
		} else {
			missing = append(missing, "PostgreSQL (initdb, postgres under /usr/lib/postgresql/*/bin)")
		}
	}
	bin := os.Getenv("STREAMHOUSE_TOOLS_BIN")
	if bin == "" {
		if home, err := os.UserHomeDir(); err == nil {
			bin = filepath.Join(home, ".cache", "streamhouse", "bin")
		}
	}
	if p := filepath.Join(bin, "versitygw"); isExecutable(p) {
		tl.versitygw = p
	} else if p, err := exec.LookPath("versitygw"); err == nil {
		tl.versitygw = p
	} else {
		missing = append(missing, "versitygw ("+filepath.Join(bin, "versitygw")+")")
	}
	if len(missing) > 0 {
		msg := "missing " + strings.Join(missing, " and ") + ": run scripts/services.sh start"
		if os.Getenv("STREAMHOUSE_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg + " (STREAMHOUSE_REQUIRE_SERVICES=1)")
		}
		t.Skip(msg)
	}
	return tl
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// procAttr puts a child in its own process group (so the test can signal
// everything it started) and has the kernel kill it if the test process
// dies without running its cleanups (a panic, a timeout).
func procAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
}

// child is one running service process.
type child struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited
}

func startChild(cmd *exec.Cmd) (*child, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the child's process group.
func (c *child) signal(sig syscall.Signal) error {
	if c.exited() {
		return nil
	}
	if err := syscall.Kill(-c.cmd.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %v to %d: %w", sig, c.cmd.Process.Pid, err)
	}
	return nil
}

// wait waits up to d for the child to exit.
func (c *child) wait(d time.Duration) bool {
	select {
	case <-c.done:
		return true
	case <-time.After(d):
		return false
	}
}

// kill ends the process group for good (a stopped process dies of SIGKILL
// too) and waits for the exit.
func (c *child) kill() {
	_ = c.signal(syscall.SIGKILL)
	<-c.done
}

// postgres is a private PostgreSQL server that the nemesis restarts.
type postgres struct {
	bin, data, sock, logPath string
	port                     int
	cred                     *syscall.Credential // the postgres user when the test runs as root

	mu   sync.Mutex
	proc *child
}

// newPostgres creates a cluster under dir (initdb) and starts it.
func newPostgres(ctx context.Context, bin, dir string) (*postgres, error) {
	pg := &postgres{bin: bin, data: filepath.Join(dir, "data"), sock: dir, logPath: filepath.Join(dir, "server.log")}
	if os.Geteuid() == 0 { // PostgreSQL refuses to run as root
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs a postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		pg.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, fmt.Errorf("chown %s: %w", dir, err)
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	pg.port = port
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", pg.data, "-U", "postgres",
		"--auth=trust", "-E", "UTF8", "--no-sync")
	initdb.SysProcAttr = procAttr(pg.cred)
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	if err := pg.start(ctx); err != nil {
		return nil, err
	}
	return pg, nil
}

// URL is the server's address for a client connecting directly.
func (pg *postgres) Addr() string { return fmt.Sprintf("127.0.0.1:%d", pg.port) }

// start runs the server and waits until it accepts connections.
func (pg *postgres) start(ctx context.Context) error {
	logf, err := os.OpenFile(pg.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	// Durability of the test server itself does not matter (as in
	// scripts/services.sh); a fast shutdown still checkpoints, so a
	// restart loses nothing.
	cmd := exec.Command(filepath.Join(pg.bin, "postgres"), "-D", pg.data,
		"-c", "listen_addresses=127.0.0.1", "-p", strconv.Itoa(pg.port), "-k", pg.sock,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=300")
	cmd.SysProcAttr = procAttr(pg.cred)
	cmd.Stdout, cmd.Stderr = logf, logf
	proc, err := startChild(cmd)
	if err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	pg.mu.Lock()
	pg.proc = proc
	pg.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, pg.adminURL())
		if err == nil {
			_ = conn.Close(cctx)
			cancel()
			return nil
		}
		cancel()
		if proc.exited() {
			return fmt.Errorf("postgres exited at start (see %s): %w", pg.logPath, err)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("postgres not accepting connections within 60 s (see %s): %w", pg.logPath, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (pg *postgres) adminURL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=2", pg.port)
}

// restartFast is `pg_ctl restart -m fast`: SIGINT to the postmaster (fast
// shutdown: sessions are ended, a checkpoint is written), then a start.
func (pg *postgres) restartFast(ctx context.Context) error {
	pg.mu.Lock()
	proc := pg.proc
	pg.mu.Unlock()
	if err := syscall.Kill(proc.cmd.Process.Pid, syscall.SIGINT); err != nil {
		return fmt.Errorf("fast shutdown: %w", err)
	}
	if !proc.wait(60 * time.Second) {
		return errors.New("postgres did not shut down within 60 s")
	}
	return pg.start(ctx)
}

// stop is `pg_ctl stop -m immediate`, then a kill of whatever is left.
func (pg *postgres) stop() {
	pg.mu.Lock()
	proc := pg.proc
	pg.mu.Unlock()
	if proc == nil {
		return
	}
	_ = syscall.Kill(proc.cmd.Process.Pid, syscall.SIGQUIT)
	if !proc.wait(10 * time.Second) {
		proc.kill()
	}
	_ = proc.signal(syscall.SIGKILL) // any backend left behind
}

// objectStore is a private versitygw that the nemesis pauses.
type objectStore struct {
	addr, logPath string
	proc          *child
}

func newObjectStore(ctx context.Context, bin, dir string) (*objectStore, error) {
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &objectStore{addr: fmt.Sprintf("127.0.0.1:%d", port), logPath: filepath.Join(dir, "server.log")}
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "--port", s.addr, "--quiet", "posix", root)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s3AccessKey, "ROOT_SECRET_KEY="+s3SecretKey)
	cmd.SysProcAttr = procAttr(nil)
	cmd.Stdout, cmd.Stderr = logf, logf
	if s.proc, err = startChild(cmd); err != nil {
		return nil, fmt.Errorf("start versitygw: %w", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			_ = c.Close()
			return s, nil
		}
		if s.proc.exited() || time.Now().After(deadline) || ctx.Err() != nil {
			s.proc.kill()
			return nil, fmt.Errorf("versitygw not listening on %s (see %s): %w", s.addr, s.logPath, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// createBucket makes the bucket the agents share.
func (s *objectStore) createBucket(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	b, err := objstore.NewS3(ctx, objstore.S3Config{
		Bucket: name, Endpoint: "http://" + s.addr,
		AccessKey: s3AccessKey, SecretKey: s3SecretKey, CreateBucket: true,
	})
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", name, err)
	}
	b.Close()
	return nil
}

// freePort returns a port that was free a moment ago, picked below the
// kernel's ephemeral range so that no outgoing connection takes it before
// the server (re)binds it: agents and PostgreSQL keep their ports across
// restarts.
func freePort() (int, error) {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 11000 {
				low = n
			}
		}
	}
	for range 100 {
		port := 10000 + rand.IntN(low-10000)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		_ = ln.Close()
		return port, nil
	}
	return 0, errors.New("no free port below the ephemeral range")
}
