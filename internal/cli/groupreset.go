package cli

import (
	"net/http"
	"strings"

	"github.com/spf13/cobra"
)

// consumer lag, reset and seek: GET /api/v1/consumer-groups/{id}/lag and
// POST .../reset and .../seek.

// groupLagAnswer is GET /api/v1/consumer-groups/{id}/lag.
type groupLagAnswer struct {
	GroupID        string `json:"group_id"`
	TotalLag       int64  `json:"total_lag"`
	PartitionCount int    `json:"partition_count"`
	Topics         []struct {
		Topic      string        `json:"topic"`
		TotalLag   int64         `json:"total_lag"`
		Partitions []groupOffset `json:"partitions"`
	} `json:"topics"`
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
			for _, t := range a.Topics {
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
	strategy, topic   string
	partition         int32
	offset, timestamp int64
}

func (f *moveFlags) add(inv *invocation, cmd *cobra.Command, withStrategy bool) {
	fs := cmd.Flags()
	if withStrategy {
		fs.StringVar(&f.strategy, "strategy", "", "earliest, latest, specific (with --offset) or timestamp (with --timestamp)")
		fs.Int64Var(&f.offset, "offset", 0, "the offset, for --strategy specific")
		setFlagCompletion(cmd, "strategy", fixedCompletions("earliest", "latest", "specific", "timestamp"))
	}
	fs.StringVarP(&f.topic, "topic", "t", "", "topic (reset: default every topic the group committed offsets for)")
	fs.Int32VarP(&f.partition, "partition", "p", 0, "partition (default: every partition of the topic)")
	fs.Int64Var(&f.timestamp, "timestamp", 0, "time in ms since the epoch: the first offset at or after it")
	setFlagCompletion(cmd, "topic", inv.completeNames("topic", true))
}

// body is the request: the flags given, under the API's names.
func (f *moveFlags) body(cmd *cobra.Command) map[string]any {
	body := map[string]any{}
	set := cmd.Flags().Changed
	if set("strategy") {
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
		body["timestamp"] = f.timestamp
	}
	return body
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
		Use:   "reset GROUP --strategy earliest|latest|specific|timestamp [--topic T] [--partition P] [--offset N] [--timestamp MS]",
		Short: "Move a consumer group's committed offsets (the group must have no live members)",
		Long: `Moves a consumer group's committed offsets, as kafka-consumer-groups
--reset-offsets does: to the log start (earliest), the high watermark
(latest), an offset (specific, with --offset) or the first record at or
after a time (timestamp, with --timestamp in ms since the epoch; none that
recent: the high watermark). Offsets are kept between the log start and the
high watermark. Without --topic, every topic the group committed offsets
for; without --partition, every partition of the topic. Refused while the
group has live members.`,
		Args:              needArgs("GROUP"),
		ValidArgsFunction: groupArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireFlags(cmd, "strategy"); err != nil {
				return err
			}
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
			return inv.move(cmd, args[0], "reset", f.body(cmd))
		},
	}
	f.add(inv, cmd, true)
	return cmd
}

func (inv *invocation) consumerSeekCmd(groupArg cobra.CompletionFunc) *cobra.Command {
	var f moveFlags
	cmd := &cobra.Command{
		Use:   "seek GROUP --topic T [--partition P] --timestamp MS",
		Short: "Move a consumer group's offsets to a time (the group must have no live members)",
		Long: `Moves a consumer group's committed offsets in a topic (or one of its
partitions) to the first record at or after --timestamp (ms since the
epoch; none that recent: the high watermark). Same as reset --strategy
timestamp. Refused while the group has live members.`,
		Args:              needArgs("GROUP"),
		ValidArgsFunction: groupArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireFlags(cmd, "topic", "timestamp"); err != nil {
				return err
			}
			return inv.move(cmd, args[0], "seek", f.body(cmd))
		},
	}
	f.add(inv, cmd, false)
	return cmd
}
