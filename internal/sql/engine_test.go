//go:build cgo

package sql

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

func mustQuery(t *testing.T, e Engine, q string) Result {
	t.Helper()
	res, err := e.Query(context.Background(), Request{Query: q})
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return res
}

func rowsJSON(t *testing.T, res Result) string {
	t.Helper()
	out, err := json.Marshal(res.Rows)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestSmoke(t *testing.T) {
	eachBackend(t, func(t *testing.T, store metadata.Store) {
		b := newBroker(t, store)
		recs := genRecords(200, 4)
		produce(t, b, "my-topic", 4, recs)
		e := newEngine(t, b, Config{})
		res := mustQuery(t, e, `SELECT count(*), sum(json_extract(value, '$.price')) FROM "my-topic"`)
		t.Logf("%v %s %d", res.Columns, rowsJSON(t, res), res.ScannedRecords)
		res = mustQuery(t, e, `SELECT partition, "offset", timestamp, key, value, headers FROM "my-topic" WHERE partition = 1 AND "offset" < 3`)
		t.Logf("%v %s %d", res.Columns, rowsJSON(t, res), res.ScannedRecords)
		_, err := e.Query(context.Background(), Request{Query: "SELECT * FROM nope"})
		var qe *Error
		if !errors.As(err, &qe) || qe.Code != CodeTopicNotFound {
			t.Fatal(err)
		}
	})
}
