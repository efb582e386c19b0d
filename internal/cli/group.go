package cli

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

// groupOffset is one partition a group committed, with its lag.
type groupOffset struct {
	Topic           string `json:"topic"`
	Partition       int32  `json:"partition"`
	CommittedOffset int64  `json:"committed_offset"`
	HighWatermark   int64  `json:"high_watermark"`
	Lag             int64  `json:"lag"`
}

// groupSummary is one group of GET /api/v1/consumer-groups.
type groupSummary struct {
	GroupID    string        `json:"group_id"`
	TotalLag   int64         `json:"total_lag"`
	Partitions []groupOffset `json:"partitions"`
}

// groupMember is one member of a group.
type groupMember struct {
	MemberID string `json:"member_id"`
	ClientID string `json:"client_id"`
	Host     string `json:"host"`
}

// groupInfo is GET /api/v1/consumer-groups/{id}.
type groupInfo struct {
	GroupID  string        `json:"group_id"`
	State    string        `json:"state"`
	Members  []groupMember `json:"members"`
	Offsets  []groupOffset `json:"offsets"`
	TotalLag int64         `json:"total_lag"`
}

// committedOffset is one entry of GET /api/v1/consumer-groups/{id}/offsets.
type committedOffset struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Metadata  string `json:"metadata"`
}

func (c *client) groupNames(ctx context.Context) ([]string, error) {
	var gs []groupSummary
	if _, err := c.call(ctx, request{method: http.MethodGet, base: c.api, path: "/api/v1/consumer-groups"}, &gs); err != nil {
		return nil, err
	}
	names := make([]string, len(gs))
	for i, g := range gs {
		names[i] = g.GroupID
	}
	return names, nil
}

func (c *client) group(ctx context.Context, id string) (groupInfo, []byte, error) {
	var g groupInfo
	raw, err := c.call(ctx, request{method: http.MethodGet, base: c.api, path: "/api/v1/consumer-groups/" + pathEscape(id)}, &g)
	return g, raw, err
}

var offsetHeader = []string{"TOPIC", "PARTITION", "COMMITTED", "HIGH WATERMARK", "LAG"}

func offsetRows(offs []groupOffset) [][]string {
	rows := make([][]string, len(offs))
	for i, o := range offs {
		rows[i] = []string{o.Topic, itoa(o.Partition), itoa(o.CommittedOffset), itoa(o.HighWatermark), itoa(o.Lag)}
	}
	return rows
}

func (inv *invocation) consumerCmd() *cobra.Command {
	groupArg := inv.completeNames("group", false)
	list := &cobra.Command{
		Use:   "list",
		Short: "List consumer groups with their lag",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := inv.client()
			var gs []groupSummary
			raw, err := c.call(cmd.Context(), request{method: http.MethodGet, base: c.api, path: "/api/v1/consumer-groups"}, &gs)
			if err != nil {
				return err
			}
			p := inv.out()
			if p.json {
				return p.raw(raw)
			}
			if len(gs) == 0 {
				return p.textf("No consumer groups.")
			}
			rows := make([][]string, len(gs))
			for i, g := range gs {
				var topics []string
				for _, o := range g.Partitions {
					if !slices.Contains(topics, o.Topic) {
						topics = append(topics, o.Topic)
					}
				}
				rows[i] = []string{g.GroupID, strings.Join(topics, ","), itoa(len(g.Partitions)), itoa(g.TotalLag)}
			}
			return p.table([]string{"GROUP", "TOPICS", "PARTITIONS", "TOTAL LAG"}, rows)
		},
	}
	get := &cobra.Command{
		Use:               "get GROUP",
		Short:             "Show a consumer group: state, members, committed offsets and lag",
		Args:              needArgs("GROUP"),
		ValidArgsFunction: groupArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			g, raw, err := inv.client().group(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			p := inv.out()
			if p.json {
				return p.raw(raw)
			}
			p.fields([][2]string{
				{"Group", g.GroupID},
				{"State", g.State},
				{"Members", itoa(len(g.Members))},
				{"Total lag", itoa(g.TotalLag)},
			})
			if len(g.Members) > 0 {
				p.textf("")
				rows := make([][]string, len(g.Members))
				for i, m := range g.Members {
					rows[i] = []string{m.MemberID, m.ClientID, m.Host}
				}
				p.table([]string{"MEMBER", "CLIENT", "HOST"}, rows)
			}
			p.textf("")
			if len(g.Offsets) == 0 {
				return p.textf("No committed offsets.")
			}
			return p.table(offsetHeader, offsetRows(g.Offsets))
		},
	}
	return group("consumer", "Inspect consumer groups and move their offsets", list, get,
		inv.consumerLagCmd(groupArg), inv.consumerResetCmd(groupArg), inv.consumerSeekCmd(groupArg), inv.consumerDeleteCmd(groupArg))
}

func (inv *invocation) offsetCmd() *cobra.Command {
	var (
		groupID, topic, metadata string
		partition                int32
		offset                   int64
	)
	addFlags := func(cmd *cobra.Command) {
		fs := cmd.Flags()
		fs.StringVarP(&groupID, "group", "g", "", "consumer group")
		fs.StringVarP(&topic, "topic", "t", "", "topic")
		fs.Int32VarP(&partition, "partition", "p", 0, "partition")
		setFlagCompletion(cmd, "group", inv.completeNames("group", true))
		setFlagCompletion(cmd, "topic", inv.completeNames("topic", true))
	}
	commit := &cobra.Command{
		Use:   "commit --group G --topic T --partition P --offset O [--metadata M]",
		Short: "Commit a consumer group's offset (creates the group if needed)",
		Long: `Commits the offset of the next record the group will read in a
partition; a group that does not exist yet is created, as in Kafka.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "group", "topic", "partition", "offset"); err != nil {
				return err
			}
			if partition < 0 || offset < 0 {
				return usagef("--partition and --offset must not be negative")
			}
			body := map[string]any{"group_id": groupID, "topic": topic, "partition": partition, "offset": offset}
			if metadata != "" {
				body["metadata"] = metadata
			}
			c := inv.client()
			raw, err := c.call(cmd.Context(), request{method: http.MethodPost, base: c.api, path: "/api/v1/consumer-groups/commit", body: body}, nil)
			if err != nil {
				return err
			}
			inv.s.names.forget()
			p := inv.out()
			if p.json {
				return p.raw(raw)
			}
			return p.textf("Committed offset %d for group %q on %q partition %d.", offset, groupID, topic, partition)
		},
	}
	addFlags(commit)
	commit.Flags().Int64Var(&offset, "offset", 0, "offset of the next record to read")
	commit.Flags().StringVar(&metadata, "metadata", "", "metadata stored with the offset")

	get := &cobra.Command{
		Use:   "get --group G --topic T --partition P",
		Short: "Show a consumer group's committed offset for a partition",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "group", "topic", "partition"); err != nil {
				return err
			}
			c := inv.client()
			var offs []committedOffset
			if _, err := c.call(cmd.Context(), request{method: http.MethodGet, base: c.api,
				path: "/api/v1/consumer-groups/" + pathEscape(groupID) + "/offsets"}, &offs); err != nil {
				return err
			}
			i := slices.IndexFunc(offs, func(o committedOffset) bool { return o.Topic == topic && o.Partition == partition })
			if i < 0 {
				return fmt.Errorf("consumer group %q has no committed offset for %q partition %d", groupID, topic, partition)
			}
			o := offs[i]
			p := inv.out()
			if p.json {
				return p.value(o)
			}
			return p.table([]string{"GROUP", "TOPIC", "PARTITION", "OFFSET", "METADATA"},
				[][]string{{groupID, o.Topic, itoa(o.Partition), itoa(o.Offset), o.Metadata}})
		},
	}
	addFlags(get)
	return group("offset", "Commit and read consumer group offsets", commit, get)
}
