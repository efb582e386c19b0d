package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestAuthSettings(t *testing.T) {
	t.Parallel()
	c := mustLoad(t, map[string]string{})
	if c.AuthEnabled || c.AuthScramIterations != 4096 || c.AuthSessionLifetime != 0 || c.BootstrapUsers() != nil || c.SuperUsers() != nil {
		t.Fatalf("defaults: %v %v %v %v %v", c.AuthEnabled, c.AuthScramIterations, c.AuthSessionLifetime, c.BootstrapUsers(), c.SuperUsers())
	}
	c = mustLoad(t, map[string]string{
		"AUTH_ENABLED": "true", "AUTH_BOOTSTRAP_USERS": "admin:a:b=c,alice:pw", "AUTH_SCRAM_ITERATIONS": "8192",
		"AUTH_SESSION_LIFETIME_MS": "60000", "SUPER_USERS": "admin, User:root",
	})
	if !c.AuthEnabled || c.AuthScramIterations != 8192 || c.AuthSessionLifetime != time.Minute {
		t.Fatalf("values: %v %v %v", c.AuthEnabled, c.AuthScramIterations, c.AuthSessionLifetime)
	}
	if got := fmt.Sprint(c.BootstrapUsers()); got != "[{admin a:b=c} {alice pw}]" {
		t.Fatalf("bootstrap users: %s", got)
	}
	if got := fmt.Sprint(c.SuperUsers()); got != "[admin root]" {
		t.Fatalf("super users: %s", got)
	}
}

func TestAuthBadSettings(t *testing.T) {
	t.Parallel()
	const secret = "Secret-Pw-3e1"
	for name, value := range map[string]string{
		"AUTH_BOOTSTRAP_USERS":     "alice" + secret,
		"AUTH_SCRAM_ITERATIONS":    "1000",
		"AUTH_SESSION_LIFETIME_MS": "-1",
		"SUPER_USERS":              "a,,b",
	} {
		_, err := loadEnv(t, map[string]string{name: value})
		if err == nil || !strings.Contains(err.Error(), name+"=") {
			t.Errorf("%s=%q: %v", name, value, err)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error shows the value: %v", name, err)
		}
	}
	for _, bad := range []string{":pw", "alice:", "a,b:c", "al\tice:pw", "alice:pw,alice:pw2", strings.Repeat("x", 257) + ":pw"} {
		if _, err := loadEnv(t, map[string]string{"AUTH_BOOTSTRAP_USERS": bad}); err == nil {
			t.Errorf("AUTH_BOOTSTRAP_USERS=%q accepted", bad)
		}
	}
	if _, err := loadEnv(t, map[string]string{"AUTH_SCRAM_ITERATIONS": "16385"}); err == nil {
		t.Error("AUTH_SCRAM_ITERATIONS=16385 accepted")
	}
	// The bootstrap passwords never reach the log.
	c := mustLoad(t, map[string]string{"AUTH_BOOTSTRAP_USERS": "alice:" + secret})
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", c)
	if strings.Contains(buf.String(), secret) || !strings.Contains(buf.String(), "AUTH_BOOTSTRAP_USERS") {
		t.Fatalf("log: %s", buf.String())
	}
}
