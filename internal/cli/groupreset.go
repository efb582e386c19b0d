package cli

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// consumer lag, reset, seek and delete: GET /api/v1/consumer-groups/{id}/lag,
// POST .../reset and .../seek, DELETE /api/v1/consumer-groups/{id}. Their
// flags are the original streamctl's too (originalConsumerFlags).

// groupLagAnswer is GET /api/v1/consumer-groups/{id}/lag.
type groupLagAnswer struct {
	GroupID        string `json:"group_id"`
	TotalLag       int64  `json:"total_lag"`
	PartitionCount int    `json:"partition_count"`
	TopicLags      []struct {
		Topic      string        `json:"topic"`
		TotalLag   int64         `json:"total_lag"`
		Partitions []groupOffset `json:"partitions"`
	} `json:"topic_lags"`
}

// movedOffset is one partition of a reset or seek answer; old_offset is
// -1 when the group had committed none.
type movedOffset struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	OldOffset int64  `json:"old_offset"`
	NewOffset int64  `json:"new_offset"`
}

// resetAnswer is the answer of POST .../reset and .../seek.
type resetAnswer struct {
	GroupID    string        `json:"group_id"`
	Partitions []movedOffset `json:"partitions"`
}

func (inv *invocation) consumerLagCmd(groupArg cobra.CompletionFunc) *cobra.Command {
	return &cobra.Command{
		Use:               "lag GROUP",
		Short:             "Show a consumer group's lag per partition",
		Args:              needArgs("GROUP"),
		ValidArgsFunction: groupArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			c := inv.client()
			var a groupLagAnswer
			raw, err := c.call(cmd.Context(), request{method: http.MethodGet, base: c.api,
				path: "/api/v1/consumer-groups/" + pathEscape(args[0]) + "/lag"}, &a)
			if err != nil {
				return err
			}
			p := inv.out()
			if p.json {
				return p.raw(raw)
			}
			var offs []groupOffset
			for _, t := range a.TopicLags {
				offs = append(offs, t.Partitions...)
			}
			if len(offs) == 0 {
				return p.textf("Consumer group %q has no committed offsets.", a.GroupID)
			}
			if err := p.table(offsetHeader, offsetRows(offs)); err != nil {
				return err
			}
			return p.textf("Total lag: %d", a.TotalLag)
		},
	}
}

// moveFlags are the flags of reset and seek, sent when given.
type moveFlags struct {
	strategy, topic, timestamp string
	partition                  int32
	offset                     int64
}

func (f *moveFlags) add(inv *invocation, cmd *cobra.Command, withStrategy bool) {
	fs := cmd.Flags()
	if withStrategy {
		fs.StringVar(&f.strategy, "strategy", "earliest", "earliest, latest, specific (with --offset) or timestamp (with --timestamp); -s after the command")
		fs.Int64Var(&f.offset, "offset", 0, "the offset, for --strategy specific; -o after the command")
		setFlagCompletion(cmd, "strategy", fixedCompletions("earliest", "latest", "specific", "timestamp"))
	}
	fs.StringVarP(&f.topic, "topic", "t", "", "topic (reset: default every topic the group committed offsets for)")
	fs.Int32VarP(&f.partition, "partition", "p", 0, "partition (default: every partition of the topic)")
	fs.StringVar(&f.timestamp, "timestamp", "", "a time, RFC 3339 / ISO 8601 (2026-01-15T10:00:00Z) or ms since the epoch: the first offset at or after it")
	setFlagCompletion(cmd, "topic", inv.completeNames("topic", true))
}

// parseTime reads --timestamp: ms since the epoch, RFC 3339 (ISO 8601
// with a zone), or ISO 8601 without a zone (UTC, as the original read it).
func parseTime(s string) (int64, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		if ms < 0 {
			return 0, usagef("--timestamp %d is negative", ms)
		}
		return ms, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UnixMilli(), nil
		}
	}
	return 0, usagef("--timestamp %q is neither ms since the epoch nor an ISO 8601 time (2026-01-15T10:00:00Z)", s)
}

// body is the request: the flags given, under the API's names; the
// strategy always (its default is earliest, as in the original).
func (f *moveFlags) body(cmd *cobra.Command) (map[string]any, error) {
	body := map[string]any{}
	set := cmd.Flags().Changed
	if cmd.Flags().Lookup("strategy") != nil {
		body["strategy"] = f.strategy
	}
	if set("topic") {
		body["topic"] = f.topic
	}
	if set("partition") {
		body["partition"] = f.partition
	}
	if set("offset") {
		body["offset"] = f.offset
	}
	if set("timestamp") {
		ms, err := parseTime(f.timestamp)
		if err != nil {
			return nil, err
		}
		body["timestamp"] = ms
	}
	return body, nil
}

// move posts a reset or seek and prints the partitions moved.
func (inv *invocation) move(cmd *cobra.Command, group, verb string, body map[string]any) error {
	c := inv.client()
	var a resetAnswer
	raw, err := c.call(cmd.Context(), request{method: http.MethodPost, base: c.api,
		path: "/api/v1/consumer-groups/" + pathEscape(group) + "/" + verb, body: body}, &a)
	if err != nil {
		return err
	}
	p := inv.out()
	if p.json {
		return p.raw(raw)
	}
	rows := make([][]string, len(a.Partitions))
	for i, m := range a.Partitions {
		old := "-"
		if m.OldOffset >= 0 {
			old = itoa(m.OldOffset)
		}
		rows[i] = []string{m.Topic, itoa(m.Partition), old, itoa(m.NewOffset)}
	}
	if err := p.table([]string{"TOPIC", "PARTITION", "OLD OFFSET", "NEW OFFSET"}, rows); err != nil {
		return err
	}
	return p.textf("Moved the offsets of consumer group %q on %d %s.", a.GroupID, len(a.Partitions), plural(len(a.Partitions), "partition"))
}

func (inv *invocation) consumerResetCmd(groupArg cobra.CompletionFunc) *cobra.Command {
	var f moveFlags
	cmd := &cobra.Command{
		Use:   "reset GROUP [--strategy earliest|latest|specific|timestamp] [--topic T] [--partition P] [--offset N] [--timestamp TIME]",
		Short: "Move a consumer group's committed offsets (the group must have no live members)",
		Long: `Moves a consumer group's committed offsets, as kafka-consumer-groups
--reset-offsets does: to the log start (earliest), the high watermark
(latest), an offset (specific, with --offset) or the first record at or
after a time (timestamp, with --timestamp: RFC 3339 / ISO 8601, or ms since
the epoch; none that recent: the high watermark). The strategy defaults to
earliest. Offsets are kept between the log start and the high watermark.
Without --topic, every topic the group committed offsets for; without
--partition, every partition of the topic. Refused while the group has live
members.

As in the original streamctl, -s is --strategy and -o is --offset when
they come after "consumer reset" (before it they are the global --server
and --output).`,
		Args:              needArgs("GROUP"),
		ValidArgsFunction: groupArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch strings.ToLower(f.strategy) {
			case "specific":
				if err := requireFlags(cmd, "offset"); err != nil {
					return err
				}
			case "timestamp":
				if err := requireFlags(cmd, "timestamp"); err != nil {
					return err
				}
			}
			body, err := f.body(cmd)
			if err != nil {
				return err
			}
			return inv.move(cmd, args[0], "reset", body)
		},
	}
	f.add(inv, cmd, true)
	return cmd
}

func (inv *invocation) consumerSeekCmd(groupArg cobra.CompletionFunc) *cobra.Command {
	var f moveFlags
	cmd := &cobra.Command{
		Use:   "seek GROUP --topic T [--partition P] --timestamp TIME",
		Short: "Move a consumer group's offsets to a time (the group must have no live members)",
		Long: `Moves a consumer group's committed offsets in a topic (or one of its
partitions) to the first record at or after --timestamp (RFC 3339 / ISO
8601, e.g. 2026-01-15T10:00:00Z, or ms since the epoch; none that recent:
the high watermark). Same as reset --strategy timestamp. A group that never
committed starts with these offsets. Refused while the group has live
members.`,
		Args:              needArgs("GROUP"),
		ValidArgsFunction: groupArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireFlags(cmd, "topic", "timestamp"); err != nil {
				return err
			}
			body, err := f.body(cmd)
			if err != nil {
				return err
			}
			return inv.move(cmd, args[0], "seek", body)
		},
	}
	f.add(inv, cmd, false)
	return cmd
}

// groupDeleted is the answer of DELETE /api/v1/consumer-groups/{id}.
type groupDeleted struct {
	GroupID           string `json:"group_id"`
	PartitionsDeleted int    `json:"partitions_deleted"`
}

func (inv *invocation) consumerDeleteCmd(groupArg cobra.CompletionFunc) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "delete GROUP --force",
		Short: "Delete a consumer group and its committed offsets (the group must have no live members)",
		Long: `Deletes a consumer group with its committed offsets. --force is
required, as in the original streamctl (which without it only asked);
refused while the group has live members.`,
		Args:              needArgs("GROUP"),
		ValidArgsFunction: groupArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !force {
				return usagef("consumer delete: deleting group %q removes its committed offsets for good; add --force", args[0])
			}
			c := inv.client()
			var a groupDeleted
			raw, err := c.call(cmd.Context(), request{method: http.MethodDelete, base: c.api,
				path: "/api/v1/consumer-groups/" + pathEscape(args[0])}, &a)
			if err != nil {
				return err
			}
			inv.s.names.forget()
			p := inv.out()
			if p.json {
				return p.raw(raw)
			}
			return p.textf("Deleted consumer group %q (committed offsets of %d %s).", a.GroupID, a.PartitionsDeleted, plural(a.PartitionsDeleted, "partition"))
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "delete without asking (required)")
	return cmd
}

// originalConsumerFlags rewrites the original streamctl's short flags of
// "consumer reset", -s (--strategy) and -o (--offset), which here are the
// global --server and --output, into their long names when they come after
// "consumer reset" and before "--". Nothing else is changed; global flags
// before the command keep their meaning ("streamctl -o json consumer
// reset g -s latest").
func originalConsumerFlags(args []string) []string {
	// Global flags that take a value as the next word.
	valued := map[string]bool{"-o": true, "--output": true, "-s": true, "--server": true,
		"--api-url": true, "--schema-registry-url": true, "--grpc-addr": true}
	var path []string
	i := 0
	for ; i < len(args) && len(path) < 2; i++ {
		a := args[i]
		switch {
		case a == "--":
			return args
		case valued[a]:
			i++ // its value
		case strings.HasPrefix(a, "-"):
		default:
			path = append(path, a)
		}
	}
	if len(path) < 2 || path[0] != "consumer" || path[1] != "reset" {
		return args
	}
	out := append([]string(nil), args[:i]...)
	for j, a := range args[i:] {
		switch {
		case a == "--":
			return append(out, args[i+j:]...)
		case a == "-s":
			a = "--strategy"
		case strings.HasPrefix(a, "-s="):
			a = "--strategy=" + a[len("-s="):]
		case a == "-o":
			a = "--offset"
		case strings.HasPrefix(a, "-o="):
			a = "--offset=" + a[len("-o="):]
		case len(a) > 2 && (strings.HasPrefix(a, "-s") || strings.HasPrefix(a, "-o")) && a[1] != '-':
			// -slatest, -o5: pflag's attached short value.
			name := "--strategy="
			if a[1] == 'o' {
				name = "--offset="
			}
			a = name + a[2:]
		}
		out = append(out, a)
	}
	return out
}
