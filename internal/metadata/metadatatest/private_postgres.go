package metadatatest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// PrivatePostgres is a PostgreSQL server of one test, which the test may
// stop and start to inject an outage (never the shared server of
// scripts/services.sh, which other tests use).
type PrivatePostgres struct {
	t      *testing.T
	bindir string
	data   string
	port   int
	asUser []string // command prefix to run as the postgres user when root
}

// StartPrivatePostgres initialises and starts a server on a free port in
// a temporary directory. Without PostgreSQL binaries it skips the test, or
// fails it when STREAMHOUSE_REQUIRE_SERVICES is set.
func StartPrivatePostgres(t *testing.T) *PrivatePostgres {
	t.Helper()
	bindir := ""
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		bindir = filepath.Dir(p)
	} else if ms, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl"); len(ms) > 0 {
		bindir = filepath.Dir(ms[len(ms)-1])
	}
	if bindir == "" {
		if os.Getenv(EnvRequireServices) != "" {
			t.Fatal("PostgreSQL binaries (initdb, pg_ctl) not found")
		}
		t.Skip("PostgreSQL binaries (initdb, pg_ctl) not found")
	}
	pg := &PrivatePostgres{t: t, bindir: bindir}
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		// initdb refuses to run as root.
		pg.asUser = []string{"runuser", "-u", "postgres", "--"}
		for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if out, err := exec.Command("chown", "postgres", dir).CombinedOutput(); err != nil {
			t.Fatalf("chown: %v: %s", err, out)
		}
	}
	pg.data = filepath.Join(dir, "data")
	pg.run("initdb", "-D", pg.data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pg.port = ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	pg.Start()
	t.Cleanup(func() { pg.ctl("-m", "immediate", "stop") })
	return pg
}

// URL is the server's admin URL (database postgres, no password).
func (pg *PrivatePostgres) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", pg.port)
}

func (pg *PrivatePostgres) run(tool string, args ...string) {
	pg.t.Helper()
	cmd := append(append([]string{}, pg.asUser...), append([]string{filepath.Join(pg.bindir, tool)}, args...)...)
	if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
		pg.t.Fatalf("%s: %v: %s", tool, err, out)
	}
}

func (pg *PrivatePostgres) ctl(args ...string) {
	pg.t.Helper()
	pg.run("pg_ctl", append([]string{"-D", pg.data, "-w", "-t", "60"}, args...)...)
}

// Start starts the server again after Stop.
func (pg *PrivatePostgres) Start() {
	pg.t.Helper()
	pg.ctl("-l", filepath.Join(pg.data, "server.log"), "start", "-o",
		"-h 127.0.0.1 -p "+strconv.Itoa(pg.port)+" -k "+pg.data+" -c fsync=off -c synchronous_commit=off")
}

// Stop shuts the server down the way an operator's restart does: it
// terminates every session (57P01) and refuses new ones until started.
func (pg *PrivatePostgres) Stop() { pg.ctl("-m", "fast", "stop") }
