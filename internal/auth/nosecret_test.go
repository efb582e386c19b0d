package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/metadata/sqlstore"
)

// Passwords never reach the store: every way a user is made (bootstrap,
// a password set through the API, a salted password as Kafka's
// AlterUserScramCredentials sends it, an agent's own user) leaves no
// password and no salted password in what the database holds, read raw
// (SQLite: every file of the database; PostgreSQL: every row of every
// table as text), in plain, hex or base64 form.

var secretPasswords = []string{"Bootstrap-Pw-7f3a9c1e", "SetPassword-Pw-88d2b04a", "Upsert-Pw-51c0e9d7"}

// makeUsers makes users every way and returns every secret that must not
// be stored.
func makeUsers(t *testing.T, st metadata.Store) [][]byte {
	t.Helper()
	ctx := t.Context()
	a := New(Config{Store: st, Enabled: true})
	if err := a.Bootstrap(ctx, []BootstrapUser{{"boot", secretPasswords[0]}}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SetPassword(ctx, "api", secretPasswords[1], nil); err != nil {
		t.Fatal(err)
	}
	salt := []byte("kafka-client-salt")
	salted, err := ScramSHA256.SaltedPassword(secretPasswords[2], salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.PutSaltedCredential(ctx, "upsert", ScramSHA256, salt, salted, 4096); err != nil {
		t.Fatal(err)
	}
	_, agentPw, err := a.AgentLogin(ctx, "agent-1")
	if err != nil {
		t.Fatal(err)
	}
	// Every user logs in: the credentials are real.
	for user, pw := range map[string]string{"boot": secretPasswords[0], "api": secretPasswords[1], "upsert": secretPasswords[2]} {
		if _, err := a.VerifyPassword(ctx, user, pw); err != nil {
			t.Fatalf("%s: %v", user, err)
		}
	}
	var secrets [][]byte
	for _, pw := range append(secretPasswords, agentPw) {
		secrets = append(secrets, []byte(pw))
		// Salted passwords are password-equivalent: none may be stored.
		for _, m := range ScramMechanisms {
			for _, c := range mustList(t, st) {
				if c.Mechanism == m.Name {
					if sp, err := m.SaltedPassword(pw, c.Salt, int(c.Iterations)); err == nil {
						secrets = append(secrets, sp)
					}
				}
			}
		}
	}
	return secrets
}

func mustList(t *testing.T, st metadata.Store) []metadata.ScramCredential {
	t.Helper()
	cs, err := st.ListScramCredentials(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// checkAbsent fails if raw holds any secret in any usual encoding.
func checkAbsent(t *testing.T, where string, raw []byte, secrets [][]byte) {
	t.Helper()
	lower := bytes.ToLower(raw)
	for _, s := range secrets {
		for _, form := range [][]byte{s, []byte(hex.EncodeToString(s)), []byte(base64.StdEncoding.EncodeToString(s)), []byte(base64.RawStdEncoding.EncodeToString(s))} {
			if bytes.Contains(raw, form) || bytes.Contains(lower, bytes.ToLower(form)) {
				t.Errorf("%s holds a secret (%q)", where, form)
			}
		}
	}
}

func TestNoSecretInSQLite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := sqlstore.OpenSQLite(context.Background(), filepath.Join(dir, "metadata.db"), logger)
	if err != nil {
		t.Fatal(err)
	}
	secrets := makeUsers(t, st)
	if n := len(mustList(t, st)); n != 6 {
		t.Fatalf("stored %d credentials, want 6", n)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	read := 0
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		read += len(raw)
		checkAbsent(t, e.Name(), raw, secrets)
	}
	// The check reads something: the user names are in there.
	all, _ := os.ReadFile(filepath.Join(dir, "metadata.db"))
	if read == 0 || !bytes.Contains(all, []byte("upsert")) {
		t.Fatalf("read %d bytes without the user names: the check reads the wrong files", read)
	}
}

func TestNoSecretInPostgres(t *testing.T) {
	t.Parallel()
	dbURL := metadatatest.PostgresDatabase(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := t.Context()
	st, err := sqlstore.OpenPostgres(ctx, dbURL, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	secrets := makeUsers(t, st)
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var dump bytes.Buffer
	for _, table := range tables {
		rows, err := conn.Query(ctx, `SELECT t::text FROM `+pgx.Identifier{table}.Sanitize()+` t`)
		if err != nil {
			t.Fatal(err)
		}
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range texts {
			dump.WriteString(s + "\n")
		}
	}
	checkAbsent(t, "the PostgreSQL tables", dump.Bytes(), secrets)
	if !bytes.Contains(dump.Bytes(), []byte("upsert")) || len(tables) < 10 {
		t.Fatalf("dump of %d tables lacks the user names: the check reads the wrong database", len(tables))
	}
}
