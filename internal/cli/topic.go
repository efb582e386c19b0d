package cli

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

// topicInfo is a topic as GET /api/v1/topics and /api/v1/topics/{name}
// show it.
type topicInfo struct {
	ID              string            `json:"id"`
	Name            string            `json:"name"`
	Partitions      int32             `json:"partitions"`
	Config          map[string]string `json:"config"`
	CreatedAt       string            `json:"created_at"`
	PartitionStates []partitionInfo   `json:"partition_states"`
}

// partitionInfo is one partition's state.
type partitionInfo struct {
	Partition     int32   `json:"partition"`
	Leader        *string `json:"leader"`
	LeaderEpoch   int32   `json:"leader_epoch"`
	LowWatermark  int64   `json:"low_watermark"`
	HighWatermark int64   `json:"high_watermark"`
}

func (c *client) topicNames(ctx context.Context) ([]string, error) {
	var ts []topicInfo
	if _, err := c.call(ctx, request{method: http.MethodGet, base: c.api, path: "/api/v1/topics"}, &ts); err != nil {
		return nil, err
	}
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.Name
	}
	return names, nil
}

func (c *client) partitions(ctx context.Context, topic string) ([]partitionInfo, error) {
	var ps []partitionInfo
	_, err := c.call(ctx, request{method: http.MethodGet, base: c.api, path: "/api/v1/topics/" + pathEscape(topic) + "/partitions"}, &ps)
	return ps, err
}

func (inv *invocation) topicCmd() *cobra.Command {
	topicArg := inv.completeNames("topic", false)

	list := &cobra.Command{
		Use:   "list",
		Short: "List topics",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ts []topicInfo
			raw, err := inv.client().call(cmd.Context(), request{method: http.MethodGet, base: inv.client().api, path: "/api/v1/topics"}, &ts)
			if err != nil {
				return err
			}
			p := inv.out()
			if p.json {
				return p.raw(raw)
			}
			if len(ts) == 0 {
				return p.textf("No topics.")
			}
			slices.SortFunc(ts, func(a, b topicInfo) int { return strings.Compare(a.Name, b.Name) })
			rows := make([][]string, len(ts))
			for i, t := range ts {
				rows[i] = []string{t.Name, itoa(t.Partitions), t.CreatedAt, formatMap(t.Config)}
			}
			return p.table([]string{"NAME", "PARTITIONS", "CREATED", "CONFIG"}, rows)
		},
	}

	var partitions int32
	var configs []string
	create := &cobra.Command{
		Use:   "create NAME [--partitions N] [--config key=value ...]",
		Short: "Create a topic",
		Example: `  streamctl topic create orders --partitions 4
  streamctl topic create audit --partitions 1 --config retention.ms=86400000 --config cleanup.policy=delete`,
		Args:              needArgs("NAME"),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := parsePairs("config", configs)
			if err != nil {
				return err
			}
			if partitions < 1 {
				return usagef("--partitions must be at least 1, not %d", partitions)
			}
			body := map[string]any{"name": args[0], "partitions": partitions}
			if cfg != nil {
				body["config"] = cfg
			}
			c := inv.client()
			var t topicInfo
			raw, err := c.call(cmd.Context(), request{method: http.MethodPost, base: c.api, path: "/api/v1/topics", body: body}, &t)
			if err != nil {
				return err
			}
			inv.s.names.forget()
			p := inv.out()
			if p.json {
				return p.raw(raw)
			}
			return p.textf("Created topic %q with %d %s.", t.Name, t.Partitions, plural(int(t.Partitions), "partition"))
		},
	}
	create.Flags().Int32VarP(&partitions, "partitions", "p", 1, "number of partitions")
	create.Flags().StringArrayVarP(&configs, "config", "c", nil, "topic config key=value (repeatable), e.g. retention.ms=86400000")

	show := func(describe bool) func(cmd *cobra.Command, args []string) error {
		return func(cmd *cobra.Command, args []string) error {
			c := inv.client()
			var t topicInfo
			raw, err := c.call(cmd.Context(), request{method: http.MethodGet, base: c.api, path: "/api/v1/topics/" + pathEscape(args[0])}, &t)
			if err != nil {
				return err
			}
			p := inv.out()
			if p.json {
				return p.raw(raw)
			}
			return printTopic(p, t, describe)
		}
	}
	get := &cobra.Command{
		Use:               "get NAME",
		Short:             "Show a topic: partitions, config, message count",
		Args:              needArgs("NAME"),
		ValidArgsFunction: topicArg,
		RunE:              show(false),
	}
	describe := &cobra.Command{
		Use:               "describe NAME",
		Short:             "Show a topic with each partition's leader and offsets",
		Args:              needArgs("NAME"),
		ValidArgsFunction: topicArg,
		RunE:              show(true),
	}

	del := &cobra.Command{
		Use:               "delete NAME",
		Short:             "Delete a topic and its data",
		Args:              needArgs("NAME"),
		ValidArgsFunction: topicArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			c := inv.client()
			if _, err := c.do(cmd.Context(), request{method: http.MethodDelete, base: c.api, path: "/api/v1/topics/" + pathEscape(args[0])}); err != nil {
				return err
			}
			inv.s.names.forget()
			p := inv.out()
			if p.json {
				return p.value(map[string]any{"name": args[0], "deleted": true})
			}
			return p.textf("Deleted topic %q.", args[0])
		},
	}
	return group("topic", "Create, list, show and delete topics", list, create, get, describe, del)
}

// printTopic prints a topic's summary and, for describe, its partitions
// and config one per line.
func printTopic(p printer, t topicInfo, describe bool) error {
	var msgs int64
	for _, ps := range t.PartitionStates {
		msgs += ps.HighWatermark - ps.LowWatermark
	}
	fields := [][2]string{
		{"Name", t.Name},
		{"ID", t.ID},
		{"Partitions", itoa(t.Partitions)},
		{"Created", t.CreatedAt},
		{"Messages", itoa(msgs)},
	}
	if !describe {
		cfg := formatMap(t.Config)
		if cfg == "" {
			cfg = "(defaults)"
		}
		fields = append(fields, [2]string{"Config", cfg})
		return p.fields(fields)
	}
	if err := p.fields(fields); err != nil {
		return err
	}
	p.textf("")
	rows := make([][]string, len(t.PartitionStates))
	for i, ps := range t.PartitionStates {
		leader := "-"
		if ps.Leader != nil {
			leader = *ps.Leader
		}
		rows[i] = []string{itoa(ps.Partition), leader, itoa(ps.LeaderEpoch), itoa(ps.LowWatermark), itoa(ps.HighWatermark), itoa(ps.HighWatermark - ps.LowWatermark)}
	}
	if err := p.table([]string{"PARTITION", "LEADER", "EPOCH", "LOW", "HIGH", "MESSAGES"}, rows); err != nil {
		return err
	}
	p.textf("")
	if len(t.Config) == 0 {
		return p.textf("Config: (defaults)")
	}
	cfgRows := make([][]string, 0, len(t.Config))
	for _, k := range sortedKeys(t.Config) {
		cfgRows = append(cfgRows, []string{k, t.Config[k]})
	}
	return p.table([]string{"CONFIG", "VALUE"}, cfgRows)
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// forget drops cached names after a change the user will want to see.
func (nc *nameCache) forget() {
	nc.mu.Lock()
	nc.entries = nil
	nc.mu.Unlock()
}
