package cli

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
)

// User commands: the users that log in to every listener, through the
// REST API's /api/v1/users (docs/security.md).

type userInfo struct {
	Name        string `json:"name"`
	Credentials []struct {
		Mechanism  string `json:"mechanism"`
		Iterations int32  `json:"iterations"`
	} `json:"credentials"`
}

func (inv *invocation) userCmd() *cobra.Command {
	var newPassword, mechanism string
	create := &cobra.Command{
		Use:   "create NAME --new-password P [--mechanism SCRAM-SHA-256|SCRAM-SHA-512]",
		Short: "Create a user, or set an existing user's password",
		Long: `Creates a user that can log in to every listener (Kafka SASL, HTTP Basic on
REST and the schema registry, gRPC), or sets the password of an existing
one. Without --mechanism the user gets both SCRAM credentials, so every
mechanism (PLAIN and HTTP Basic included) works; with it, only that one.`,
		Args: needArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireFlags(cmd, "new-password"); err != nil {
				return err
			}
			body := map[string]string{"name": args[0], "password": newPassword}
			if mechanism != "" {
				m := strings.ToUpper(mechanism)
				if m != "SCRAM-SHA-256" && m != "SCRAM-SHA-512" {
					return usagef("--mechanism %q: use SCRAM-SHA-256 or SCRAM-SHA-512", mechanism)
				}
				body["mechanism"] = m
			}
			c := inv.client()
			var u userInfo
			raw, err := c.call(cmd.Context(), request{method: http.MethodPost, base: c.api, path: "/api/v1/users", body: body}, &u)
			if err != nil {
				return err
			}
			if inv.set.output == "json" {
				return inv.out().raw(raw)
			}
			return inv.out().textf("user %s: %s\n", u.Name, mechanisms(u))
		},
	}
	create.Flags().StringVar(&newPassword, "new-password", "", "the user's password (required)")
	create.Flags().StringVar(&mechanism, "mechanism", "", "only this SCRAM mechanism: SCRAM-SHA-256 or SCRAM-SHA-512 (default both)")
	_ = create.RegisterFlagCompletionFunc("mechanism", fixedCompletions("SCRAM-SHA-256", "SCRAM-SHA-512"))

	list := &cobra.Command{
		Use:   "list",
		Short: "List users and their SCRAM mechanisms",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := inv.client()
			var out struct {
				Users []userInfo `json:"users"`
			}
			raw, err := c.call(cmd.Context(), request{method: http.MethodGet, base: c.api, path: "/api/v1/users"}, &out)
			if err != nil {
				return err
			}
			if inv.set.output == "json" {
				return inv.out().raw(raw)
			}
			rows := make([][]string, 0, len(out.Users))
			for _, u := range out.Users {
				rows = append(rows, []string{u.Name, mechanisms(u)})
			}
			return inv.out().table([]string{"NAME", "MECHANISMS"}, rows)
		},
	}

	var delMechanism string
	del := &cobra.Command{
		Use:   "delete NAME [--mechanism SCRAM-SHA-256|SCRAM-SHA-512]",
		Short: "Delete a user (or only one of its SCRAM credentials)",
		Args:  needArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := inv.client()
			path := "/api/v1/users/" + pathEscape(args[0])
			if delMechanism != "" {
				path += "?mechanism=" + url.QueryEscape(strings.ToUpper(delMechanism))
			}
			if _, err := c.do(cmd.Context(), request{method: http.MethodDelete, base: c.api, path: path}); err != nil {
				return err
			}
			if inv.set.output == "json" {
				return inv.out().value(map[string]string{"deleted": args[0]})
			}
			return inv.out().textf("user %s deleted\n", args[0])
		},
	}
	del.Flags().StringVar(&delMechanism, "mechanism", "", "delete only this SCRAM credential")
	return group("user", "Manage the users that log in (create, list, delete)", create, list, del)
}

// mechanisms renders a user's credentials: "SCRAM-SHA-256 (4096), ...".
func mechanisms(u userInfo) string {
	parts := make([]string, 0, len(u.Credentials))
	for _, c := range u.Credentials {
		parts = append(parts, fmt.Sprintf("%s (%d iterations)", c.Mechanism, c.Iterations))
	}
	return strings.Join(parts, ", ")
}
