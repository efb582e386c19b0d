// Package deploy checks the files that run StreamHouse for real without a
// container engine or a cluster: the Dockerfile (parsed with BuildKit's
// parser; its build stage's `go build` lines run here and must give the
// binaries CI builds, statically linked, with SQL working), docker-compose.yml
// (loaded with the Compose v2 loader) and the Helm chart (linted and
// rendered with Helm's own packages). It is a module of its own so that
// the main module does not carry these dependencies.
package deploy

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/streamhouse/streamhouse/internal/e2e"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// instruction is one Dockerfile instruction: its keyword (lower case),
// arguments, flags and text.
type instruction struct {
	cmd   string
	args  []string
	flags []string
	text  string
}

// stage is one FROM ... [AS name] and its instructions.
type stage struct {
	base, name string
	ins        []instruction
}

func parseDockerfile(t *testing.T, path string) (args map[string]string, stages []stage) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	args = map[string]string{}
	for _, n := range res.AST.Children {
		in := instruction{cmd: strings.ToLower(n.Value), flags: n.Flags, text: n.Original}
		for a := n.Next; a != nil; a = a.Next {
			in.args = append(in.args, a.Value)
		}
		switch {
		case in.cmd == "from":
			s := stage{base: in.args[0]}
			if len(in.args) == 3 && strings.EqualFold(in.args[1], "as") {
				s.name = in.args[2]
			}
			stages = append(stages, s)
		case len(stages) == 0 && in.cmd == "arg":
			k, v, _ := strings.Cut(in.args[0], "=")
			args[k] = v
		case len(stages) == 0:
			t.Fatalf("%s before the first FROM", in.text)
		default:
			stages[len(stages)-1].ins = append(stages[len(stages)-1].ins, in)
		}
	}
	return args, stages
}

func find(s stage, cmd string) []instruction {
	var out []instruction
	for _, in := range s.ins {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// goBuild matches a build stage line: env, go build, flags, -o /out/NAME,
// the package.
var goBuild = regexp.MustCompile(`^((?:[A-Z_]+=\S+ )*)go build (.*)-o /out/(\S+) (\./cmd/\S+)$`)

func TestDockerfile(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	args, stages := parseDockerfile(t, filepath.Join(root, "Dockerfile"))
	if len(stages) != 2 {
		t.Fatalf("%d stages, want a build stage and a final one", len(stages))
	}
	build, final := stages[0], stages[1]

	// The build stage uses CI's Go.
	if want := "go" + args["GO_VERSION"]; want != runtime.Version() {
		t.Errorf("ARG GO_VERSION=%s: the image would build with %s, CI builds with %s", args["GO_VERSION"], want, runtime.Version())
	}
	if build.name != "build" || !strings.HasPrefix(build.base, "golang:${GO_VERSION}") {
		t.Errorf("build stage FROM %s AS %s, want golang:${GO_VERSION}... AS build", build.base, build.name)
	}

	// Its go build lines, run here into a temporary /out.
	out := t.TempDir()
	built := map[string]string{} // binary -> package
	for _, in := range find(build, "run") {
		line := strings.Join(in.args, " ")
		if !strings.Contains(line, "go build") {
			continue
		}
		m := goBuild.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("RUN %s: not of the form [ENV=...] go build FLAGS -o /out/NAME ./cmd/PKG", line)
		}
		built[m[3]] = m[4]
		cmd := exec.Command("sh", "-c", strings.ReplaceAll(line, "/out/", out+"/"))
		cmd.Dir = root
		if o, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("RUN %s: %v\n%s", line, err, o)
		}
	}
	if want := map[string]string{"streamhouse": "./cmd/streamhouse", "streamctl": "./cmd/streamctl"}; !equalMaps(built, want) {
		t.Fatalf("the build stage builds %v, want %v", built, want)
	}
	// The agent is built with cgo (SQL) like CI's, and both binaries
	// are static: the final stage has no libc.
	for _, in := range find(build, "run") {
		line := strings.Join(in.args, " ")
		if strings.Contains(line, "./cmd/streamhouse") && !strings.Contains(line, "CGO_ENABLED=1") {
			t.Errorf("RUN %s: the agent must be built with CGO_ENABLED=1 (SQL needs DuckDB)", line)
		}
	}
	for name := range built {
		f, err := elf.Open(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		libs, err := f.ImportedLibraries()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s has a dynamic loader: not static", name)
			}
		}
		if len(libs) > 0 {
			t.Errorf("%s needs shared libraries %v: not static", name, libs)
		}
		f.Close()
	}

	// The image's agent answers SQL (not 501) and its health check
	// passes against it.
	dir := t.TempDir()
	p := e2e.StartBinary(t, filepath.Join(out, "streamhouse"), dir, e2e.Local.Env(t, dir))
	defer p.Stop(syscall.SIGTERM)
	if code := p.Call(http.MethodPost, "/api/v1/topics", map[string]any{"name": "t", "partitions": 1}, nil); code != http.StatusCreated {
		t.Fatalf("create topic: %d", code)
	}
	var sql struct {
		Rows [][]json.Number `json:"rows"`
	}
	if code := p.Call(http.MethodPost, "/api/v1/sql", map[string]any{"query": "SELECT COUNT(*) FROM t"}, &sql); code != http.StatusOK {
		t.Fatalf("SQL on the image's agent: HTTP %d, want 200 (a build without cgo answers 501)", code)
	}
	hc := exec.Command(filepath.Join(out, "streamhouse"), "healthcheck")
	hc.Env = append(os.Environ(), "HTTP_ADDR="+strings.TrimPrefix(p.URL, "http://"))
	if o, err := hc.CombinedOutput(); err != nil {
		t.Errorf("streamhouse healthcheck against a ready agent: %v\n%s", err, o)
	}
	ctl := exec.Command(filepath.Join(out, "streamctl"), "--api-url", p.URL, "topic", "list")
	if o, err := ctl.CombinedOutput(); err != nil || !bytes.Contains(o, []byte("t")) {
		t.Errorf("streamctl topic list: %v\n%s", err, o)
	}

	// The final stage: minimal, non-root, /data, ports, health on /ready.
	if !strings.HasPrefix(final.base, "gcr.io/distroless/static") {
		t.Errorf("final stage FROM %s, want distroless/static (the binaries are static)", final.base)
	}
	copied := map[string]bool{}
	for _, in := range find(final, "copy") {
		if slices.Contains(in.flags, "--from=build") {
			for _, a := range in.args[:len(in.args)-1] {
				copied[a] = true
			}
		}
	}
	for name := range built {
		if !copied["/out/"+name] {
			t.Errorf("final stage does not copy /out/%s from the build stage", name)
		}
	}
	users := find(final, "user")
	if len(users) != 1 {
		t.Fatalf("final stage has %d USER lines, want 1", len(users))
	}
	if u, _, _ := strings.Cut(users[0].args[0], ":"); u == "root" || u == "0" || u == "" {
		t.Errorf("USER %s: must not be root", users[0].args[0])
	}
	vols := find(final, "volume")
	if len(vols) != 1 || !slices.Equal(vols[0].args, []string{"/data"}) {
		t.Errorf("VOLUME: %v, want /data", vols)
	}
	var ports []string
	for _, in := range find(final, "expose") {
		ports = append(ports, in.args...)
	}
	slices.Sort(ports)
	if !slices.Equal(ports, []string{"50051", "8080", "9092"}) {
		t.Errorf("EXPOSE %v, want 8080 9092 50051", ports)
	}
	hcs := find(final, "healthcheck")
	if len(hcs) != 1 || !strings.Contains(hcs[0].text, `"/usr/local/bin/streamhouse", "healthcheck"`) {
		t.Errorf("HEALTHCHECK: %v, want CMD streamhouse healthcheck (GET /ready)", hcs)
	}
	env := map[string]string{}
	for _, in := range find(final, "env") {
		// BuildKit gives each pair as name, value, separator ("=" or "").
		for i := 0; i+1 < len(in.args); i += 3 {
			env[in.args[i]] = in.args[i+1]
		}
	}
	for _, k := range []string{"LOCAL_STORAGE_PATH", "STREAMHOUSE_METADATA_PATH", "STREAMHOUSE_CACHE", "WAL_DIR"} {
		if !strings.HasPrefix(env[k], "/data/") {
			t.Errorf("ENV %s=%q, want a path under /data", k, env[k])
		}
	}
	entry := find(final, "entrypoint")
	if len(entry) != 1 || !strings.Contains(entry[0].text, "/usr/local/bin/streamhouse") {
		t.Errorf("ENTRYPOINT: %v", entry)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
