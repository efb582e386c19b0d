package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// schemaTypes are the schema registry's types; AVRO is the default.
var schemaTypes = []string{"AVRO", "JSON", "PROTOBUF"}

// schemaVersion is GET /subjects/{s}/versions/{v}.
type schemaVersion struct {
	Subject    string          `json:"subject"`
	ID         int             `json:"id"`
	Version    int             `json:"version"`
	SchemaType string          `json:"schemaType"`
	Schema     string          `json:"schema"`
	References json.RawMessage `json:"references,omitempty"`
}

func (c *client) subjectNames(ctx context.Context) ([]string, error) {
	var names []string
	_, err := c.call(ctx, request{method: http.MethodGet, base: c.registry, path: "/subjects", registry: true}, &names)
	return names, err
}

// readSchema reads a schema file ("-" is stdin) and the request body
// registering or checking it.
func (inv *invocation) readSchema(file, schemaType string) (map[string]any, error) {
	t := strings.ToUpper(schemaType)
	if !slices.Contains(schemaTypes, t) {
		return nil, usagef("--schema-type %q: use AVRO, JSON or PROTOBUF", schemaType)
	}
	if file == "-" && inv.s.repl {
		return nil, usagef("reading a schema from stdin (-) does not work in the REPL; give a file")
	}
	var data []byte
	var err error
	if file == "-" {
		data, err = io.ReadAll(inv.s.stdin)
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, fmt.Errorf("read schema: %w", err)
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, fmt.Errorf("schema file %s is empty", file)
	}
	body := map[string]any{"schema": string(data)}
	if t != "AVRO" { // AVRO is the API's default; older registries reject the field
		body["schemaType"] = t
	}
	return body, nil
}

func (inv *invocation) schemaCmd() *cobra.Command {
	subjectArg := inv.completeNames("subject", false)
	var schemaType string
	addTypeFlag := func(cmd *cobra.Command) {
		cmd.Flags().StringVarP(&schemaType, "schema-type", "t", "AVRO", "schema type: AVRO, JSON or PROTOBUF")
		setFlagCompletion(cmd, "schema-type", fixedCompletions(schemaTypes...))
	}
	subjectThenFile := func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) == 0 {
			return subjectArg(cmd, args, toComplete)
		}
		if len(args) == 1 {
			return nil, cobra.ShellCompDirectiveDefault // a file
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "List schema subjects",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := inv.client()
			var names []string
			raw, err := c.call(cmd.Context(), request{method: http.MethodGet, base: c.registry, path: "/subjects", registry: true}, &names)
			if err != nil {
				return err
			}
			p := inv.out()
			if p.json {
				return p.raw(raw)
			}
			if len(names) == 0 {
				return p.textf("No subjects.")
			}
			rows := make([][]string, len(names))
			for i, n := range names {
				rows[i] = []string{n}
			}
			return p.table([]string{"SUBJECT"}, rows)
		},
	}

	register := &cobra.Command{
		Use:   "register SUBJECT FILE [--schema-type AVRO|JSON|PROTOBUF]",
		Short: "Register a schema (from FILE, or - for stdin) under a subject",
		Long: `Registers the schema in FILE ("-" reads stdin) as the subject's next version,
or returns the existing ID when that schema is already registered. Subjects
are named {topic}-value (or {topic}-key) by convention.`,
		Example:           `  streamctl schema register orders-value /tmp/orders-schema.json --schema-type JSON`,
		Args:              needArgs("SUBJECT", "FILE"),
		ValidArgsFunction: subjectThenFile,
		RunE: func(cmd *cobra.Command, args []string) error {
			body, err := inv.readSchema(args[1], schemaType)
			if err != nil {
				return err
			}
			c := inv.client()
			var ans struct {
				ID int `json:"id"`
			}
			raw, err := c.call(cmd.Context(), request{method: http.MethodPost, base: c.registry,
				path: "/subjects/" + pathEscape(args[0]) + "/versions", body: body, registry: true}, &ans)
			if err != nil {
				return err
			}
			inv.s.names.forget()
			p := inv.out()
			if p.json {
				return p.raw(raw)
			}
			return p.textf("Registered schema for subject %q with ID %d.", args[0], ans.ID)
		},
	}
	addTypeFlag(register)

	var version string
	get := &cobra.Command{
		Use:               "get SUBJECT [--version V|latest]",
		Short:             "Show a subject's schema (the latest version by default)",
		Args:              needArgs("SUBJECT"),
		ValidArgsFunction: subjectArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			if version != "latest" {
				if n, err := strconv.Atoi(version); err != nil || n < 1 {
					return usagef("--version %q: use a version number (1 or more) or latest", version)
				}
			}
			c := inv.client()
			var sv schemaVersion
			raw, err := c.call(cmd.Context(), request{method: http.MethodGet, base: c.registry,
				path: "/subjects/" + pathEscape(args[0]) + "/versions/" + pathEscape(version), registry: true}, &sv)
			if err != nil {
				return err
			}
			p := inv.out()
			if p.json {
				return p.raw(raw)
			}
			if sv.SchemaType == "" {
				sv.SchemaType = "AVRO"
			}
			p.fields([][2]string{
				{"Subject", sv.Subject},
				{"Version", itoa(sv.Version)},
				{"ID", itoa(sv.ID)},
				{"Type", sv.SchemaType},
			})
			p.textf("")
			return p.textf("%s", prettySchema(sv.Schema))
		},
	}
	get.Flags().StringVar(&version, "version", "latest", "version number, or latest")

	var permanent bool
	del := &cobra.Command{
		Use:   "delete SUBJECT [--permanent]",
		Short: "Delete a subject's versions (soft; --permanent to erase them)",
		Long: `Deletes every version of a subject. The delete is soft (the registry
keeps the schemas and their IDs) unless --permanent is given, which
soft-deletes and then erases them.`,
		Args:              needArgs("SUBJECT"),
		ValidArgsFunction: subjectArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			c := inv.client()
			path := "/subjects/" + pathEscape(args[0])
			var versions []int
			raw, err := c.call(cmd.Context(), request{method: http.MethodDelete, base: c.registry, path: path, registry: true}, &versions)
			var se *serverError
			// 40404: already soft-deleted, which a permanent delete needs.
			if err != nil && !(permanent && errors.As(err, &se) && se.RegCode == 40404) {
				return err
			}
			if permanent {
				raw, err = c.call(cmd.Context(), request{method: http.MethodDelete, base: c.registry, path: path + "?permanent=true", registry: true}, &versions)
				if err != nil {
					return err
				}
			}
			inv.s.names.forget()
			p := inv.out()
			if p.json {
				return p.raw(raw)
			}
			how := "Deleted"
			if permanent {
				how = "Permanently deleted"
			}
			vs := make([]string, len(versions))
			for i, v := range versions {
				vs[i] = itoa(v)
			}
			return p.textf("%s subject %q (versions %s).", how, args[0], strings.Join(vs, ", "))
		},
	}
	del.Flags().BoolVar(&permanent, "permanent", false, "erase the versions instead of a soft delete")

	check := &cobra.Command{
		Use:   "check SUBJECT FILE [--schema-type AVRO|JSON|PROTOBUF]",
		Short: "Check a schema's compatibility with the subject's latest version",
		Long: `Asks the registry whether the schema in FILE ("-" reads stdin) is
compatible with the subject's latest version under the subject's
compatibility mode. Exit status 0 when compatible, 1 when not.`,
		Args:              needArgs("SUBJECT", "FILE"),
		ValidArgsFunction: subjectThenFile,
		RunE: func(cmd *cobra.Command, args []string) error {
			body, err := inv.readSchema(args[1], schemaType)
			if err != nil {
				return err
			}
			c := inv.client()
			var ans struct {
				IsCompatible bool     `json:"is_compatible"`
				Messages     []string `json:"messages"`
			}
			raw, err := c.call(cmd.Context(), request{method: http.MethodPost, base: c.registry,
				path: "/compatibility/subjects/" + pathEscape(args[0]) + "/versions/latest?verbose=true", body: body, registry: true}, &ans)
			if err != nil {
				return err
			}
			p := inv.out()
			if p.json {
				if err := p.raw(raw); err != nil {
					return err
				}
			} else if ans.IsCompatible {
				p.textf("Compatible with the latest version of %q.", args[0])
			} else {
				p.textf("NOT compatible with the latest version of %q.", args[0])
				for _, m := range ans.Messages {
					p.textf("  - %s", m)
				}
			}
			if !ans.IsCompatible {
				return fmt.Errorf("the schema is not compatible with the latest version of %q", args[0])
			}
			return nil
		},
	}
	addTypeFlag(check)
	return group("schema", "Manage schemas in the schema registry", list, register, get, del, check)
}

// prettySchema indents a JSON schema (Avro, JSON Schema); others are shown
// as stored.
func prettySchema(s string) string {
	var buf bytes.Buffer
	if json.Indent(&buf, []byte(strings.TrimSpace(s)), "", "  ") == nil {
		return buf.String()
	}
	return s
}

func (inv *invocation) sqlCmd() *cobra.Command {
	var (
		timeout time.Duration
		maxRows int
		follow  bool
	)
	query := &cobra.Command{
		Use:   "query SQL...",
		Short: "Run a SQL query over topics",
		Long: `Runs a SQL query over topics. The words after "query" are the query;
quote it on a shell command line (the REPL does not glob, so
sql query SELECT * FROM orders LIMIT 10 works there as typed).`,
		Example: `  streamctl sql query 'SELECT * FROM orders LIMIT 10'
  streamctl sql query --max-rows 100 --timeout 5s 'SELECT key, COUNT(*) FROM orders GROUP BY key'
  streamctl sql query -o json 'SHOW TOPICS'
  streamctl sql query --follow --timeout 10m "SELECT key, value FROM orders WHERE value->>'status' = 'failed'"`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("%s: missing SQL (usage: %s)", cmdPath(cmd), cmd.UseLine())
			}
			return nil
		},
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			c := inv.client()
			var ans struct {
				Columns   []json.RawMessage   `json:"columns"`
				Rows      [][]json.RawMessage `json:"rows"`
				Truncated bool                `json:"truncated"`
			}
			body := map[string]any{"query": strings.Join(args, " ")}
			if cmd.Flags().Changed("timeout") {
				if timeout < time.Millisecond {
					return usagef("%s: --timeout must be at least 1ms", cmdPath(cmd))
				}
				body["timeout_ms"] = timeout.Milliseconds()
			}
			if cmd.Flags().Changed("max-rows") {
				if follow {
					return usagef("%s: --max-rows does not apply to --follow (use LIMIT)", cmdPath(cmd))
				}
				if maxRows < 1 {
					return usagef("%s: --max-rows must be positive", cmdPath(cmd))
				}
				body["max_rows"] = maxRows
			}
			if follow {
				return c.followSQL(cmd.Context(), body, inv.out())
			}
			raw, err := c.call(cmd.Context(), request{method: http.MethodPost, base: c.api, path: "/api/v1/sql", body: body}, &ans)
			if err != nil {
				return err
			}
			p := inv.out()
			if p.json {
				return p.raw(raw)
			}
			header := make([]string, len(ans.Columns))
			for i, col := range ans.Columns {
				var named struct {
					Name string `json:"name"`
				}
				if json.Unmarshal(col, &named) == nil && named.Name != "" {
					header[i] = named.Name
				} else {
					header[i] = jsonCell(col)
				}
			}
			rows := make([][]string, len(ans.Rows))
			for i, r := range ans.Rows {
				rows[i] = make([]string, len(r))
				for j, v := range r {
					rows[i][j] = jsonCell(v)
				}
			}
			if err := p.table(header, rows); err != nil {
				return err
			}
			if ans.Truncated {
				return p.textf("(%d %s; truncated: more rows matched, see --max-rows)", len(rows), plural(len(rows), "row"))
			}
			return p.textf("(%d %s)", len(rows), plural(len(rows), "row"))
		},
	}
	query.Flags().DurationVar(&timeout, "timeout", 0, "stop the query after this long (default: the server's SQL_TIMEOUT_MS)")
	query.Flags().IntVar(&maxRows, "max-rows", 0, "return at most this many rows (default: the server's SQL_MAX_ROWS)")
	query.Flags().BoolVar(&follow, "follow", false, "a live query: print matching rows as records are committed, until LIMIT, --timeout or Ctrl+C")
	// Flags after the query's first word are part of the query.
	query.Flags().SetInterspersed(false)
	return group("sql", "Query topics with SQL", query)
}
