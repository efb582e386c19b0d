package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/spf13/cobra"
)

// Limits of one batch when producing lines from stdin. A batch is sent as
// soon as the lines read so far are taken, so slow input (tail -f) is sent
// line by line and fast input in batches.
const (
	batchMaxRecords = 1000
	batchMaxBytes   = 1 << 20
	maxLineBytes    = 16 << 20 // the server's default body limit
)

const produceLong = `Sends one record with --value, or without it one record per line of
standard input (blank lines are skipped; lines are sent in batches as they
arrive; in the REPL --value is required).

Without --partition, a record with a key goes to the key's partition (the
one a Kafka client would choose) and records without a key are spread.

--ack says when the server answers: durable (the default) once the record
is stored in the object store; buffered once it is in the server's write
buffer; none at once.`

// produceAnswer is POST /api/v1/produce's answer.
type produceAnswer struct {
	Offset    int64 `json:"offset"`
	Partition int32 `json:"partition"`
	Timestamp int64 `json:"timestamp"`
}

// offsetJSON is one record's place in a batch answer.
type offsetJSON struct {
	Partition int32 `json:"partition"`
	Offset    int64 `json:"offset"`
}

// batchAnswer is POST /api/v1/produce/batch's answer (and, merged over
// batches, the JSON output of produce from stdin).
type batchAnswer struct {
	Count   int          `json:"count"`
	Offsets []offsetJSON `json:"offsets"`
}

func (inv *invocation) produceCmd() *cobra.Command {
	var (
		partition  int32
		key, value string
		ack        string
		headers    []string
	)
	cmd := &cobra.Command{
		Use:   "produce TOPIC [--value V] [--key K] [--partition P] [--header k=v ...] [--ack none|buffered|durable]",
		Short: "Send records to a topic (--value, or one per line of stdin)",
		Long:  produceLong,
		Example: `  streamctl produce orders --partition 0 --value '{"event": "signup", "user": "alice"}'
  streamctl produce orders --key user-1 --header source=cli --value '{"event": "click"}'
  printf 'a\nb\nc\n' | streamctl produce orders --ack buffered`,
		Args:              needArgs("TOPIC"),
		ValidArgsFunction: inv.completeNames("topic", false),
		RunE: func(cmd *cobra.Command, args []string) error {
			fs := cmd.Flags()
			if fs.Changed("partition") && partition < 0 {
				return usagef("--partition %d is negative; leave it out to let the key choose", partition)
			}
			hdrs, err := parsePairs("header", headers)
			if err != nil {
				return err
			}
			if fs.Changed("ack") {
				ack = strings.ToLower(ack)
				if ack != "none" && ack != "buffered" && ack != "durable" {
					return usagef("--ack %q: use none, buffered or durable", ack)
				}
			}
			rec := map[string]any{}
			if fs.Changed("key") {
				rec["key"] = key
			}
			if hdrs != nil {
				rec["headers"] = hdrs
			}
			req := map[string]any{"topic": args[0]}
			if fs.Changed("partition") {
				req["partition"] = partition
			}
			if fs.Changed("ack") {
				req["ack_mode"] = ack
			}
			if fs.Changed("value") {
				return inv.produceOne(cmd.Context(), req, rec, value)
			}
			if inv.s.repl {
				return usagef("produce: --value is required in the REPL")
			}
			if isTerminal(inv.s.stdin) {
				fmt.Fprintln(inv.s.stderr, "Reading records from standard input, one per line; end with Ctrl+D.")
			}
			return inv.produceLines(cmd.Context(), req, rec)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&value, "value", "", "the record's value (without it: one record per line of stdin)")
	fs.StringVarP(&key, "key", "k", "", "the record's key (chooses the partition unless --partition is given)")
	fs.Int32VarP(&partition, "partition", "p", 0, "partition to write to (default: by key, or spread)")
	fs.StringArrayVarP(&headers, "header", "H", nil, "record header key=value (repeatable)")
	fs.StringVar(&ack, "ack", "durable", "when the server answers: none, buffered or durable")
	setFlagCompletion(cmd, "ack", fixedCompletions("none", "buffered", "durable"))
	return cmd
}

// produceOne sends one record with POST /api/v1/produce.
func (inv *invocation) produceOne(ctx context.Context, req, rec map[string]any, value string) error {
	for k, v := range rec {
		req[k] = v
	}
	req["value"] = value
	c := inv.client()
	var a produceAnswer
	raw, err := c.call(ctx, request{method: http.MethodPost, base: c.api, path: "/api/v1/produce", body: req}, &a)
	if err != nil {
		return err
	}
	p := inv.out()
	if p.json {
		return p.raw(raw)
	}
	return p.textf("Produced to %q partition %d at offset %d.", req["topic"], a.Partition, a.Offset)
}

// produceLines sends stdin's lines with POST /api/v1/produce/batch, in
// order, one batch at a time.
func (inv *invocation) produceLines(ctx context.Context, req, rec map[string]any) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lines := make(chan string, batchMaxRecords)
	readErr := make(chan error, 1)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(inv.s.stdin)
		sc.Buffer(make([]byte, 64<<10), maxLineBytes)
		for sc.Scan() {
			line := strings.TrimSuffix(sc.Text(), "\r")
			if line == "" {
				continue
			}
			select {
			case lines <- line:
			case <-ctx.Done():
				readErr <- nil
				return
			}
		}
		readErr <- sc.Err()
	}()

	c := inv.client()
	total := batchAnswer{Offsets: []offsetJSON{}}
	for {
		batch, more := nextBatch(ctx, lines)
		if len(batch) > 0 {
			recs := make([]map[string]any, len(batch))
			for i, v := range batch {
				r := map[string]any{"value": v}
				for k, x := range rec {
					r[k] = x
				}
				recs[i] = r
			}
			body := map[string]any{"records": recs}
			for k, v := range req {
				body[k] = v
			}
			var a batchAnswer
			if _, err := c.call(ctx, request{method: http.MethodPost, base: c.api, path: "/api/v1/produce/batch", body: body}, &a); err != nil {
				if total.Count > 0 {
					return fmt.Errorf("%w (after %d records were produced)", err, total.Count)
				}
				return err
			}
			total.Count += a.Count
			total.Offsets = append(total.Offsets, a.Offsets...)
		}
		if !more {
			break
		}
	}
	if err := ctx.Err(); err != nil {
		fmt.Fprintf(inv.s.stderr, "streamctl: stopped after producing %d records\n", total.Count)
		return err
	}
	if err := <-readErr; err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("a line is longer than %d bytes", maxLineBytes)
		}
		return fmt.Errorf("read stdin after %d records: %w", total.Count, err)
	}
	p := inv.out()
	if p.json {
		return p.value(total)
	}
	return printProduced(p, req["topic"].(string), total)
}

// nextBatch waits for a line, then takes what else is ready up to the
// batch limits. more is false once the input has ended (or ctx is done).
func nextBatch(ctx context.Context, lines <-chan string) (batch []string, more bool) {
	select {
	case l, ok := <-lines:
		if !ok {
			return nil, false
		}
		batch = append(batch, l)
	case <-ctx.Done():
		return nil, false
	}
	size := len(batch[0])
	for len(batch) < batchMaxRecords && size < batchMaxBytes {
		select {
		case l, ok := <-lines:
			if !ok {
				return batch, false
			}
			batch = append(batch, l)
			size += len(l)
		default:
			return batch, true
		}
	}
	return batch, true
}

// printProduced summarizes where the records went, per partition.
func printProduced(p printer, topic string, a batchAnswer) error {
	if a.Count == 0 {
		return p.textf("No records produced (standard input was empty).")
	}
	type span struct {
		first, last int64
		n           int
	}
	spans := map[int32]*span{}
	var order []int32
	for _, o := range a.Offsets {
		s, ok := spans[o.Partition]
		if !ok {
			s = &span{first: o.Offset, last: o.Offset}
			spans[o.Partition] = s
			order = append(order, o.Partition)
		}
		s.first, s.last = min(s.first, o.Offset), max(s.last, o.Offset)
		s.n++
	}
	p.textf("Produced %d %s to %q.", a.Count, plural(a.Count, "record"), topic)
	rows := make([][]string, len(order))
	for i, part := range order {
		s := spans[part]
		rows[i] = []string{itoa(part), itoa(s.n), itoa(s.first), itoa(s.last)}
	}
	return p.table([]string{"PARTITION", "RECORDS", "FIRST OFFSET", "LAST OFFSET"}, rows)
}
