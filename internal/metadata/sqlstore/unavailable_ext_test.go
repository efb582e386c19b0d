package sqlstore_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/metadata/sqlstore"
)

// TestPostgresDownIsUnavailable stops a private PostgreSQL server under an
// open store: reads, writes and commits fail with ErrUnavailable, and work
// again once it is back.
func TestPostgresDownIsUnavailable(t *testing.T) {
	t.Parallel()
	pg := metadatatest.StartPrivatePostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := sqlstore.OpenPostgres(ctx, pg.URL(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.CreateTopic(ctx, metadata.Topic{ID: metadata.TopicID{1}, Name: "a", Partitions: 1, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	pg.Stop()
	_, getErr := s.GetTopic(ctx, "a")
	_, createErr := s.CreateTopic(ctx, metadata.Topic{ID: metadata.TopicID{2}, Name: "b", Partitions: 1, CreatedAt: time.Now()})
	pingErr := s.Ping(ctx)
	for name, err := range map[string]error{"read": getErr, "write": createErr, "ping": pingErr} {
		if !errors.Is(err, metadata.ErrUnavailable) {
			t.Errorf("%s while the database is down: %v, want ErrUnavailable", name, err)
		}
	}
	pg.Start()
	if _, err := s.GetTopic(ctx, "a"); err != nil {
		t.Fatalf("read after the restart: %v", err)
	}
}
