package deploy

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

func chartDir(t *testing.T) string {
	return filepath.Join(repoRoot(t), "deploy", "helm", "streamhouse")
}

// rendered are the manifests of one render, by kind and name.
type rendered struct {
	docs map[string]string // "Kind/name" -> YAML
}

func render(t *testing.T, vals map[string]any) (rendered, error) {
	t.Helper()
	chrt, err := loader.Load(chartDir(t))
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	rv, err := chartutil.ToRenderValues(chrt, vals, chartutil.ReleaseOptions{Name: "sh", Namespace: "streaming", IsInstall: true}, chartutil.DefaultCapabilities)
	if err != nil {
		return rendered{}, err
	}
	files, err := engine.Render(chrt, rv)
	if err != nil {
		return rendered{}, err
	}
	r := rendered{docs: map[string]string{}}
	for name, content := range files {
		if strings.HasSuffix(name, "NOTES.txt") {
			continue
		}
		for _, doc := range releaseutil.SplitManifests(content) {
			var head struct {
				Kind     string `json:"kind"`
				Metadata struct {
					Name string `json:"name"`
				} `json:"metadata"`
			}
			if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
				t.Fatalf("%s: %v\n%s", name, err, doc)
			}
			if head.Kind == "" {
				continue
			}
			r.docs[head.Kind+"/"+head.Metadata.Name] = doc
		}
	}
	return r, nil
}

func (r rendered) get(t *testing.T, key string, out any) {
	t.Helper()
	doc, ok := r.docs[key]
	if !ok {
		t.Fatalf("no %s rendered; have %v", key, r.keys())
	}
	if err := yaml.UnmarshalStrict([]byte(doc), out); err != nil {
		t.Fatalf("%s: %v\n%s", key, err, doc)
	}
}

func (r rendered) keys() []string {
	var ks []string
	for k := range r.docs {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func envOf(c corev1.Container) map[string]corev1.EnvVar {
	out := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		out[e.Name] = e
	}
	return out
}

func TestHelmChart(t *testing.T) {
	t.Parallel()
	existing := map[string]any{
		"replicaCount":   5,
		"postgres":       map[string]any{"existingSecret": "streamhouse-db"},
		"s3":             map[string]any{"existingSecret": "streamhouse-s3", "bucket": "events", "endpoint": "http://minio:9000"},
		"serviceMonitor": map[string]any{"enabled": true},
	}

	// helm lint: no warning or error.
	linter := lint.All(chartDir(t), existing, "streaming", false)
	for _, m := range linter.Messages {
		if m.Severity >= support.WarningSev {
			t.Errorf("helm lint: %s", m)
		}
	}

	r, err := render(t, existing)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	var sts appsv1.StatefulSet
	r.get(t, "StatefulSet/sh-streamhouse", &sts)
	if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 5 {
		t.Errorf("replicas %v, want 5", sts.Spec.Replicas)
	}
	var headless, client corev1.Service
	r.get(t, "Service/sh-streamhouse-agents", &headless)
	r.get(t, "Service/sh-streamhouse", &client)
	if sts.Spec.ServiceName != headless.Name || headless.Spec.ClusterIP != "None" {
		t.Errorf("StatefulSet serviceName %q, headless Service %q with clusterIP %q", sts.Spec.ServiceName, headless.Name, headless.Spec.ClusterIP)
	}
	podLabels := sts.Spec.Template.Labels
	for _, svc := range []corev1.Service{headless, client} {
		for k, v := range svc.Spec.Selector {
			if podLabels[k] != v {
				t.Errorf("Service %s selects %s=%s, pods have %v", svc.Name, k, v, podLabels)
			}
		}
		var ports []int32
		for _, p := range svc.Spec.Ports {
			ports = append(ports, p.Port)
		}
		if !slices.Equal(ports, []int32{8080, 9092, 50051}) {
			t.Errorf("Service %s ports %v", svc.Name, ports)
		}
	}
	if len(sts.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("%d containers", len(sts.Spec.Template.Spec.Containers))
	}
	c := sts.Spec.Template.Spec.Containers[0]
	env := envOf(c)
	for k, v := range map[string]string{
		"STREAMHOUSE_AGENT_ID":  "$(POD_NAME)",
		"KAFKA_ADVERTISED_ADDR": "$(POD_NAME).sh-streamhouse-agents.$(POD_NAMESPACE).svc:9092",
		"STREAMHOUSE_BUCKET":    "events",
		"S3_ENDPOINT":           "http://minio:9000",
		"WAL_DIR":               "/data/wal",
		"STREAMHOUSE_CACHE":     "/data/cache",
		"WAL_ENABLED":           "true",
	} {
		if env[k].Value != v {
			t.Errorf("env %s=%q, want %q", k, env[k].Value, v)
		}
	}
	// $(POD_NAME) works only when POD_NAME comes first.
	if c.Env[0].Name != "POD_NAME" || c.Env[0].ValueFrom == nil || c.Env[0].ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Errorf("first env %+v, want POD_NAME from metadata.name", c.Env[0])
	}
	for k, ref := range map[string][2]string{
		"DATABASE_URL":          {"streamhouse-db", "database-url"},
		"AWS_ACCESS_KEY_ID":     {"streamhouse-s3", "aws-access-key-id"},
		"AWS_SECRET_ACCESS_KEY": {"streamhouse-s3", "aws-secret-access-key"},
	} {
		e := env[k]
		if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil ||
			e.ValueFrom.SecretKeyRef.Name != ref[0] || e.ValueFrom.SecretKeyRef.Key != ref[1] {
			t.Errorf("env %s: %+v, want from Secret %s key %s", k, e, ref[0], ref[1])
		}
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/ready" || c.ReadinessProbe.HTTPGet.Port.String() != "http" {
		t.Errorf("readinessProbe %+v, want GET /ready on http", c.ReadinessProbe)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/live" {
		t.Errorf("livenessProbe %+v, want GET /live", c.LivenessProbe)
	}
	if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v", c.Resources)
	}
	if sc := sts.Spec.Template.Spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("pod securityContext %+v, want runAsNonRoot", sc)
	}
	if len(sts.Spec.VolumeClaimTemplates) != 1 || sts.Spec.VolumeClaimTemplates[0].Name != "data" {
		t.Errorf("volumeClaimTemplates %+v, want data", sts.Spec.VolumeClaimTemplates)
	}
	var pdb policyv1.PodDisruptionBudget
	r.get(t, "PodDisruptionBudget/sh-streamhouse", &pdb)
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PDB maxUnavailable %v, want 1", pdb.Spec.MaxUnavailable)
	}
	for k, v := range pdb.Spec.Selector.MatchLabels {
		if podLabels[k] != v {
			t.Errorf("PDB selects %s=%s, pods have %v", k, v, podLabels)
		}
	}
	var sm struct {
		Spec struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			Endpoints []struct {
				Port string `json:"port"`
				Path string `json:"path"`
			} `json:"endpoints"`
		} `json:"spec"`
	}
	if _, ok := r.docs["ServiceMonitor/sh-streamhouse"]; !ok {
		t.Fatalf("no ServiceMonitor with serviceMonitor.enabled; have %v", r.keys())
	}
	if err := yaml.Unmarshal([]byte(r.docs["ServiceMonitor/sh-streamhouse"]), &sm); err != nil || len(sm.Spec.Endpoints) != 1 ||
		sm.Spec.Endpoints[0].Port != "http" || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("ServiceMonitor %+v %v", sm, err)
	}
	// Exactly one Service (the headless one, a target per pod) matches the
	// ServiceMonitor: two would scrape every agent twice.
	var matched []string
	for _, key := range r.keys() {
		if !strings.HasPrefix(key, "Service/") {
			continue
		}
		var svc corev1.Service
		r.get(t, key, &svc)
		all := len(sm.Spec.Selector.MatchLabels) > 0
		for k, v := range sm.Spec.Selector.MatchLabels {
			if svc.Labels[k] != v {
				all = false
			}
		}
		if all {
			matched = append(matched, svc.Name)
		}
	}
	if !slices.Equal(matched, []string{headless.Name}) {
		t.Errorf("ServiceMonitor selector %v matches Services %v, want only %s", sm.Spec.Selector.MatchLabels, matched, headless.Name)
	}
	if _, ok := r.docs["Secret/sh-streamhouse"]; ok {
		t.Error("a Secret rendered although existing ones are named")
	}

	// The chart's own Secret, no ServiceMonitor, no persistence.
	r, err = render(t, map[string]any{
		"secrets":     map[string]any{"create": true, "databaseUrl": "postgres://u:p@db/sh", "awsAccessKeyId": "AK", "awsSecretAccessKey": "SK"},
		"persistence": map[string]any{"enabled": false},
	})
	if err != nil {
		t.Fatalf("render with secrets.create: %v", err)
	}
	var sec corev1.Secret
	r.get(t, "Secret/sh-streamhouse", &sec)
	if sec.StringData["database-url"] != "postgres://u:p@db/sh" || sec.StringData["aws-access-key-id"] != "AK" || sec.StringData["aws-secret-access-key"] != "SK" {
		t.Errorf("Secret %v", sec.StringData)
	}
	sts = appsv1.StatefulSet{} // not the first render's fields
	r.get(t, "StatefulSet/sh-streamhouse", &sts)
	env = envOf(sts.Spec.Template.Spec.Containers[0])
	for _, k := range []string{"DATABASE_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		if ref := env[k].ValueFrom; ref == nil || ref.SecretKeyRef == nil || ref.SecretKeyRef.Name != "sh-streamhouse" {
			t.Errorf("env %s: %+v, want the chart's Secret", k, env[k])
		}
	}
	if _, ok := env["S3_ENDPOINT"]; ok {
		t.Error("S3_ENDPOINT set without s3.endpoint")
	}
	if len(sts.Spec.VolumeClaimTemplates) != 0 || !slices.ContainsFunc(sts.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == "data" && v.EmptyDir != nil }) {
		t.Errorf("persistence off: claims %v, volumes %v", sts.Spec.VolumeClaimTemplates, sts.Spec.Template.Spec.Volumes)
	}
	if _, ok := r.docs["ServiceMonitor/sh-streamhouse"]; ok {
		t.Error("ServiceMonitor rendered with serviceMonitor.enabled false")
	}

	// Without credentials the chart refuses to render, saying what to set.
	if _, err := render(t, map[string]any{}); err == nil || !strings.Contains(err.Error(), "postgres.existingSecret") {
		t.Errorf("render without a DATABASE_URL Secret: %v, want an error naming postgres.existingSecret", err)
	}
}
