package deploy

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// loadCompose loads docker-compose.yml with the Compose v2 loader (as
// `docker compose config` does), with profiles, and without the
// environment of this process.
func loadCompose(t *testing.T, profiles ...string) *types.Project {
	t.Helper()
	root := repoRoot(t)
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root), cli.WithProfiles(profiles), cli.WithName("streamhouse"),
		cli.WithEnv([]string{}))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("load docker-compose.yml: %v", err)
	}
	return p
}

func published(s types.ServiceConfig) map[string]uint32 {
	out := map[string]uint32{}
	for _, p := range s.Ports {
		out[p.Published] = p.Target
	}
	return out
}

func TestCompose(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	p := loadCompose(t)
	want := []string{"grafana", "minio", "minio-init", "postgres", "prometheus", "streamhouse"}
	if got := p.ServiceNames(); !slices.Equal(sorted(got), want) {
		t.Fatalf("services without profiles: %v, want %v", sorted(got), want)
	}
	// The seed's ports.
	for svc, ports := range map[string]map[string]uint32{
		"streamhouse": {"8080": 8080, "9092": 9092, "50051": 50051},
		"grafana":     {"3001": 3000},
		"prometheus":  {"9091": 9090},
		"minio":       {"9000": 9000, "9001": 9001},
	} {
		s, err := p.GetService(svc)
		if err != nil {
			t.Fatal(err)
		}
		got := published(s)
		for pub, target := range ports {
			if got[pub] != target {
				t.Errorf("%s: port %s -> %d, want %d (all: %v)", svc, pub, got[pub], target, got)
			}
		}
	}

	sh, err := p.GetService("streamhouse")
	if err != nil {
		t.Fatal(err)
	}
	if sh.Build == nil || sh.Build.Context != root {
		t.Errorf("streamhouse builds from %v, want the repository's Dockerfile", sh.Build)
	}
	env := func(s types.ServiceConfig, k string) string {
		if v := s.Environment[k]; v != nil {
			return *v
		}
		return ""
	}
	// Configured for PostgreSQL and MinIO with the server's own variables.
	for k, v := range map[string]string{
		"DATABASE_URL":          "postgres://streamhouse:streamhouse@postgres:5432/streamhouse?sslmode=disable",
		"S3_ENDPOINT":           "http://minio:9000",
		"STREAMHOUSE_BUCKET":    "streamhouse",
		"AWS_ACCESS_KEY_ID":     "minioadmin",
		"AWS_SECRET_ACCESS_KEY": "minioadmin",
		"STREAMHOUSE_AGENT_ID":  "agent-1",
		"KAFKA_ADVERTISED_ADDR": "localhost:9092",
	} {
		if got := env(sh, k); got != v {
			t.Errorf("streamhouse %s=%q, want %q", k, got, v)
		}
	}
	pg, _ := p.GetService("postgres")
	if env(pg, "POSTGRES_USER") != "streamhouse" || env(pg, "POSTGRES_PASSWORD") != "streamhouse" || env(pg, "POSTGRES_DB") != "streamhouse" {
		t.Errorf("postgres env %v does not match streamhouse's DATABASE_URL", pg.Environment)
	}
	// The bucket streamhouse uses is the one minio-init makes.
	mi, _ := p.GetService("minio-init")
	if !strings.Contains(strings.Join(mi.Command, " "), "mc mb --ignore-existing local/streamhouse") {
		t.Errorf("minio-init does not create the bucket: %v", mi.Command)
	}
	// Start order: streamhouse after a healthy PostgreSQL and the bucket.
	for dep, cond := range map[string]string{"postgres": types.ServiceConditionHealthy, "minio-init": types.ServiceConditionCompletedSuccessfully} {
		if d, ok := sh.DependsOn[dep]; !ok || d.Condition != cond {
			t.Errorf("streamhouse depends_on %s: %+v, want %s", dep, d, cond)
		}
	}
	if d := mi.DependsOn["minio"]; d.Condition != types.ServiceConditionHealthy {
		t.Errorf("minio-init depends_on minio: %+v, want healthy", d)
	}
	// Health checks.
	for _, svc := range []string{"postgres", "minio", "streamhouse", "prometheus", "grafana"} {
		s, _ := p.GetService(svc)
		if s.HealthCheck == nil || len(s.HealthCheck.Test) < 2 {
			t.Errorf("%s has no health check", svc)
		}
	}
	if got := strings.Join(sh.HealthCheck.Test, " "); got != "CMD /usr/local/bin/streamhouse healthcheck" {
		t.Errorf("streamhouse health check %q, want the image's (GET /ready)", got)
	}

	// Prometheus and Grafana get the files of deploy/.
	mounts := func(s types.ServiceConfig) map[string]string {
		out := map[string]string{}
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				out[v.Target] = v.Source
			}
		}
		return out
	}
	pr, _ := p.GetService("prometheus")
	if got := mounts(pr)["/etc/prometheus"]; got != filepath.Join(root, "deploy", "prometheus") {
		t.Errorf("prometheus mounts %q at /etc/prometheus, want deploy/prometheus", got)
	}
	if !slices.Contains(pr.Command, "--config.file=/etc/prometheus/prometheus.yml") {
		t.Errorf("prometheus command %v", pr.Command)
	}
	gr, _ := p.GetService("grafana")
	gm := mounts(gr)
	if gm["/etc/grafana/provisioning"] != filepath.Join(root, "deploy", "grafana", "provisioning") ||
		gm["/var/lib/grafana/dashboards"] != filepath.Join(root, "deploy", "grafana", "dashboards") {
		t.Errorf("grafana mounts %v", gm)
	}
	if env(gr, "GF_SECURITY_ADMIN_USER") != "admin" || env(gr, "GF_SECURITY_ADMIN_PASSWORD") != "admin" {
		t.Errorf("grafana credentials %v, want admin/admin", gr.Environment)
	}
	// The dashboards provider reads where compose mounts the dashboards,
	// and the datasource is the compose Prometheus under the uid every
	// dashboard names.
	prov, err := os.ReadFile(filepath.Join(root, "deploy", "grafana", "provisioning", "dashboards", "streamhouse.yml"))
	if err != nil || !strings.Contains(string(prov), "path: /var/lib/grafana/dashboards") {
		t.Errorf("dashboards provider: %v\n%s", err, prov)
	}
	ds, err := os.ReadFile(filepath.Join(root, "deploy", "grafana", "provisioning", "datasources", "prometheus.yml"))
	if err != nil || !strings.Contains(string(ds), "url: http://prometheus:9090") || !strings.Contains(string(ds), "uid: prometheus") {
		t.Errorf("datasource: %v\n%s", err, ds)
	}

	// The second agent only with its profile, on its own ports, another ID.
	multi := loadCompose(t, "multi-agent")
	s2, err := multi.GetService("streamhouse-2")
	if err != nil {
		t.Fatalf("profile multi-agent: %v", err)
	}
	if !slices.Equal(s2.Profiles, []string{"multi-agent"}) {
		t.Errorf("streamhouse-2 profiles %v", s2.Profiles)
	}
	if env(s2, "STREAMHOUSE_AGENT_ID") == env(sh, "STREAMHOUSE_AGENT_ID") {
		t.Error("both agents have one STREAMHOUSE_AGENT_ID")
	}
	if env(s2, "DATABASE_URL") != env(sh, "DATABASE_URL") || env(s2, "STREAMHOUSE_BUCKET") != env(sh, "STREAMHOUSE_BUCKET") {
		t.Error("the second agent does not share the first one's PostgreSQL and bucket")
	}
	for pub, target := range map[string]uint32{"8082": 8080, "9093": 9093, "50052": 50051} {
		if got := published(s2)[pub]; got != target {
			t.Errorf("streamhouse-2 port %s -> %d, want %d", pub, got, target)
		}
	}
	if env(s2, "KAFKA_ADDR") != "0.0.0.0:9093" || env(s2, "KAFKA_ADVERTISED_ADDR") != "localhost:9093" {
		t.Errorf("streamhouse-2 Kafka %q advertised %q", env(s2, "KAFKA_ADDR"), env(s2, "KAFKA_ADVERTISED_ADDR"))
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
