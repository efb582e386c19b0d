package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
)

// Consume paging: the server answers at most maxPage records per request
// and long-polls at most 30 s; follow mode polls for followWait.
const (
	defaultLimit = 100
	maxPage      = 10000
	followPage   = 1000
	followWait   = 10 * time.Second
	retryDelay   = time.Second
)

const consumeLong = `Reads records from one partition of a topic, from --offset (a number,
"earliest" (the default) or "latest"), at most --limit records (default
100).

With --follow it keeps waiting for new records and prints them as they
arrive until Ctrl+C (exit status 0), or until --limit records if given.

--output json prints {"records": [...], "nextOffset": N, "highWatermark": H}
as the server shapes them; with --follow, one record per line as it arrives.
Keys and values that are not UTF-8 come as base64 (shown as "base64:..." in
the table).`

// consumeAnswer is GET /api/v1/consume's answer, records kept as sent.
type consumeAnswer struct {
	Records       []json.RawMessage `json:"records"`
	NextOffset    int64             `json:"nextOffset"`
	HighWatermark int64             `json:"highWatermark"`
}

// consumedRecord is one record of a consume answer.
type consumedRecord struct {
	Partition       int32             `json:"partition"`
	Offset          int64             `json:"offset"`
	Key             *string           `json:"key"`
	Value           *string           `json:"value"`
	Timestamp       int64             `json:"timestamp"`
	Headers         map[string]string `json:"headers"`
	Encoding        string            `json:"encoding"`
	HeadersEncoding string            `json:"headers_encoding"`
}

var consumeHeader = []string{"PARTITION", "OFFSET", "TIMESTAMP", "KEY", "HEADERS", "VALUE"}

func (inv *invocation) consumeCmd() *cobra.Command {
	var (
		partition int32
		offset    string
		limit     int
		follow    bool
	)
	cmd := &cobra.Command{
		Use:   "consume TOPIC [--partition P] [--offset O|earliest|latest] [--limit N] [--follow]",
		Short: "Read records from a topic's partition",
		Long:  consumeLong,
		Example: `  streamctl consume orders --partition 0 --offset 0 --limit 10
  streamctl consume orders --offset latest --follow
  streamctl consume orders -o json | jq -r '.records[].value'`,
		Args:              needArgs("TOPIC"),
		ValidArgsFunction: inv.completeNames("topic", false),
		RunE: func(cmd *cobra.Command, args []string) error {
			if partition < 0 {
				return usagef("--partition %d is negative", partition)
			}
			if limit < 0 || (limit == 0 && !follow) {
				return usagef("--limit must be positive, not %d", limit)
			}
			if follow && !cmd.Flags().Changed("limit") {
				limit = 0 // until Ctrl+C
			}
			ctx := cmd.Context()
			c := inv.client()
			start, err := resolveOffset(ctx, c, args[0], partition, offset)
			if err != nil {
				return err
			}
			if follow {
				return inv.follow(ctx, c, args[0], partition, start, limit)
			}
			return inv.consumeOnce(ctx, c, args[0], partition, start, limit)
		},
	}
	fs := cmd.Flags()
	fs.Int32VarP(&partition, "partition", "p", 0, "partition to read")
	fs.StringVar(&offset, "offset", "earliest", `first offset: a number, "earliest" or "latest"`)
	fs.IntVarP(&limit, "limit", "n", defaultLimit, "most records to read (with --follow: stop after that many; default unlimited)")
	fs.BoolVarP(&follow, "follow", "f", false, "keep waiting for new records until Ctrl+C")
	setFlagCompletion(cmd, "offset", fixedCompletions("earliest", "latest"))
	return cmd
}

// resolveOffset turns --offset into a number, asking the server for the
// partition's watermarks for "earliest" and "latest".
func resolveOffset(ctx context.Context, c *client, topic string, partition int32, offset string) (int64, error) {
	switch strings.ToLower(offset) {
	case "earliest", "beginning", "first", "latest", "end", "last":
	default:
		n, err := strconv.ParseInt(offset, 10, 64)
		if err != nil || n < 0 {
			return 0, usagef(`--offset %q: use a number (0 or more), "earliest" or "latest"`, offset)
		}
		return n, nil
	}
	ps, err := c.partitions(ctx, topic)
	if err != nil {
		return 0, err
	}
	for _, p := range ps {
		if p.Partition == partition {
			switch strings.ToLower(offset) {
			case "earliest", "beginning", "first":
				return p.LowWatermark, nil
			default:
				return p.HighWatermark, nil
			}
		}
	}
	return 0, fmt.Errorf("partition %d does not exist: topic %q has partitions 0..%d", partition, topic, len(ps)-1)
}

// fetch is one GET /api/v1/consume.
func (c *client) fetch(ctx context.Context, topic string, partition int32, offset int64, maxRecords int, wait time.Duration) (consumeAnswer, error) {
	q := url.Values{}
	q.Set("topic", topic)
	q.Set("partition", itoa(partition))
	q.Set("offset", itoa(offset))
	q.Set("maxRecords", itoa(maxRecords))
	q.Set("wait_ms", itoa(wait.Milliseconds()))
	var a consumeAnswer
	_, err := c.call(ctx, request{method: http.MethodGet, base: c.api, path: "/api/v1/consume?" + q.Encode(),
		timeout: requestTimeout + wait}, &a)
	return a, err
}

// consumeOnce reads up to limit records that are there now.
func (inv *invocation) consumeOnce(ctx context.Context, c *client, topic string, partition int32, start int64, limit int) error {
	all := consumeAnswer{Records: []json.RawMessage{}, NextOffset: start}
	for len(all.Records) < limit {
		a, err := c.fetch(ctx, topic, partition, all.NextOffset, min(limit-len(all.Records), maxPage), 0)
		if err != nil {
			return err
		}
		all.Records = append(all.Records, a.Records...)
		all.HighWatermark = a.HighWatermark
		if len(a.Records) == 0 || a.NextOffset <= all.NextOffset {
			break
		}
		all.NextOffset = a.NextOffset
		if all.NextOffset >= a.HighWatermark {
			break
		}
	}
	p := inv.out()
	if p.json {
		return p.value(all)
	}
	if len(all.Records) == 0 {
		return p.textf("No records in partition %d of %q from offset %d (the next offset to be written is %d).",
			partition, topic, start, all.HighWatermark)
	}
	rows, err := recordRows(all.Records)
	if err != nil {
		return err
	}
	return p.table(consumeHeader, rows)
}

// follow long-polls for records until ctx ends (a clean stop) or limit
// records have been printed. A 503 (not the leader, shutting down) is
// retried.
func (inv *invocation) follow(ctx context.Context, c *client, topic string, partition int32, offset int64, limit int) error {
	p := inv.out()
	st := &streamTable{header: consumeHeader}
	printed := 0
	for limit == 0 || printed < limit {
		page := followPage
		if limit > 0 {
			page = min(page, limit-printed)
		}
		a, err := c.fetch(ctx, topic, partition, offset, page, followWait)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if isStatus(err, http.StatusServiceUnavailable) {
				fmt.Fprintf(inv.s.stderr, "streamctl: %v; retrying\n", err)
				select {
				case <-time.After(retryDelay):
					continue
				case <-ctx.Done():
					return nil
				}
			}
			return err
		}
		if len(a.Records) > 0 {
			if err := printFollowed(p, st, a.Records); err != nil {
				return err
			}
			printed += len(a.Records)
		}
		if a.NextOffset > offset {
			offset = a.NextOffset
		}
	}
	return nil
}

// printFollowed prints one poll's records: JSON lines, or rows of the
// growing table (the header before the first).
func printFollowed(p printer, st *streamTable, recs []json.RawMessage) error {
	if p.json {
		for _, r := range recs {
			if err := p.line(r); err != nil {
				return err
			}
		}
		return nil
	}
	rows, err := recordRows(recs)
	if err != nil {
		return err
	}
	return st.write(p.w, rows)
}

// streamTable prints a table whose rows arrive over time: a column is as
// wide as the widest cell seen so far, so later rows line up with earlier
// ones unless they are wider. The last column is not padded.
type streamTable struct {
	header []string
	widths []int
	began  bool
}

func (st *streamTable) write(w io.Writer, rows [][]string) error {
	batch := rows
	if !st.began {
		batch = append([][]string{st.header}, rows...)
		st.began = true
	}
	for _, r := range batch {
		for i, c := range r {
			if i >= len(st.widths) {
				st.widths = append(st.widths, 0)
			}
			st.widths[i] = max(st.widths[i], utf8.RuneCountInString(cell(c)))
		}
	}
	var b strings.Builder
	for _, r := range batch {
		for i, c := range r {
			c = cell(c)
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", st.widths[i]-utf8.RuneCountInString(c)+2))
			}
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// recordRows makes table rows of records.
func recordRows(recs []json.RawMessage) ([][]string, error) {
	rows := make([][]string, 0, len(recs))
	for _, raw := range recs {
		var r consumedRecord
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("unexpected record from the server: %w", err)
		}
		key, value := "", "(null)"
		if r.Key != nil {
			key = *r.Key
		}
		if r.Value != nil {
			value = *r.Value
		}
		if r.Encoding == "base64" {
			if r.Key != nil {
				key = "base64:" + key
			}
			if r.Value != nil {
				value = "base64:" + value
			}
		}
		headers := formatMap(r.Headers)
		if r.HeadersEncoding == "base64" && headers != "" {
			headers = "base64:" + headers
		}
		rows = append(rows, []string{itoa(r.Partition), itoa(r.Offset), formatMillis(r.Timestamp), key, headers, value})
	}
	return rows, nil
}
