package cli

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

const rootLong = `streamctl is the command-line client of StreamHouse.

Run with a command, or with none for an interactive shell (REPL) that takes
the same commands without the "streamctl" prefix, with history and tab
completion. Piped into, the REPL reads one command per line.

Every command talks to the server over its REST API (STREAMHOUSE_API_URL,
default http://localhost:8080) and to the schema registry over the
Confluent API (SCHEMA_REGISTRY_URL, default the API URL + /schemas),
except the perf load tools and the transaction and acl commands, which
speak the Kafka protocol (--brokers).
--server/-s (or --grpc-addr, or STREAMHOUSE_ADDR: the original streamctl's
server address) names the server when the REST URL is not given: the REST
API on that host at port 8080, so "streamctl -s http://host:50051 topic
list" lists host's topics.

A server with TLS: --ca-file (or STREAMHOUSE_CA_FILE) is the CA that
signed its certificate, --cert-file and --key-file (STREAMHOUSE_CERT_FILE,
STREAMHOUSE_KEY_FILE) a client certificate if it requires one. With them
the REST URL, unless given, is https://, and the Kafka commands use TLS (as
they do whenever the REST URL is https://).

Output is an aligned table; --output json (or STREAMCTL_OUTPUT=json) prints
JSON for scripts. Errors go to stderr as "streamctl: message".
Exit status: 0 success; 1 an error from the server, an unreachable server,
or a failed check; 2 a bad command line (unknown command or flag, missing
argument); 130 a command stopped by Ctrl+C (consume --follow exits 0).`

// invocation is one parse of a command line: the global flags' values and
// what the root command decided.
type invocation struct {
	s         *session
	set       settings
	flags     *pflag.FlagSet // the global flags, to know which were given
	startREPL bool
}

// newRoot builds the command tree for one command line. Flags hold
// per-run state, so every command line gets a fresh tree.
func (s *session) newRoot() (*cobra.Command, *invocation) {
	inv := &invocation{s: s, set: s.defaults}
	root := &cobra.Command{
		Use:           "streamctl",
		Short:         "StreamHouse command-line client",
		Long:          rootLong,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := inv.validate(); err != nil {
				return err
			}
			// Only global flags: start the REPL with them, or in the REPL
			// keep them for the rest of the session.
			s.defaults = inv.set
			inv.startREPL = true
			return nil
		},
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return inv.validate() },
	}
	pf := root.PersistentFlags()
	inv.flags = pf
	pf.StringVarP(&inv.set.output, "output", "o", inv.set.output, "output format: table or json (env STREAMCTL_OUTPUT)")
	pf.StringVar(&inv.set.apiURL, "api-url", inv.set.apiURL, "REST API URL (env STREAMHOUSE_API_URL)")
	pf.StringVar(&inv.set.registryURL, "schema-registry-url", inv.set.registryURL, "schema registry URL (env SCHEMA_REGISTRY_URL; default: the API URL + /schemas)")
	pf.StringVarP(&inv.set.grpcAddr, "server", "s", inv.set.grpcAddr, "the server's address, as the original streamctl took it (env STREAMHOUSE_ADDR): without --api-url, the REST API on its host at port 8080")
	pf.StringVar(&inv.set.grpcAddr, "grpc-addr", inv.set.grpcAddr, "the same as --server")
	pf.StringVar(&inv.set.tls.caFile, "ca-file", inv.set.tls.caFile, "CA certificate (PEM) of a TLS server, for REST and Kafka (env STREAMHOUSE_CA_FILE); the default REST URL becomes https://")
	pf.StringVar(&inv.set.tls.certFile, "cert-file", inv.set.tls.certFile, "client certificate (PEM) for a server that requires one (env STREAMHOUSE_CERT_FILE)")
	pf.StringVar(&inv.set.tls.keyFile, "key-file", inv.set.tls.keyFile, "private key (PEM) of --cert-file (env STREAMHOUSE_KEY_FILE)")
	pf.StringVar(&inv.set.user, "user", inv.set.user, "log in as this user on every transport: HTTP Basic on REST and the schema registry, SASL on Kafka (env STREAMHOUSE_USER)")
	pf.StringVar(&inv.set.password, "password", inv.set.password, "the user's password (env STREAMHOUSE_PASSWORD); asked for, without echo, when a user is given without one on a terminal")
	pf.StringVar(&inv.set.saslMechanism, "sasl-mechanism", inv.set.saslMechanism, "SASL mechanism of the Kafka commands: SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN (env STREAMHOUSE_SASL_MECHANISM)")
	_ = root.RegisterFlagCompletionFunc("sasl-mechanism", fixedCompletions("SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"))
	_ = root.RegisterFlagCompletionFunc("output", fixedCompletions("table", "json"))
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usagef("%s (see '%s --help')", err, cmd.CommandPath())
	})
	root.AddCommand(
		inv.topicCmd(),
		inv.produceCmd(),
		inv.consumeCmd(),
		inv.sqlCmd(),
		inv.schemaCmd(),
		inv.consumerCmd(),
		inv.offsetCmd(),
		inv.perfCmd(),
		inv.transactionCmd(),
		inv.aclCmd(),
		inv.userCmd(),
		completionCmd(s.repl),
		&cobra.Command{
			Use:     "exit",
			Aliases: []string{"quit"},
			Short:   "Leave the REPL (does nothing on the command line)",
			Args:    noArgs,
			RunE:    func(*cobra.Command, []string) error { return errExit },
		},
	)
	return root, inv
}

const completionLong = `Prints a shell completion script: completion of commands, flags, and
topic, group and subject names (asked from the server when Tab is pressed).

  bash:  source <(streamctl completion bash)
         (or save it to /etc/bash_completion.d/streamctl; needs bash-completion)
  zsh:   streamctl completion zsh > "${fpath[1]}/_streamctl"
         (with "autoload -U compinit; compinit" in ~/.zshrc)
  fish:  streamctl completion fish > ~/.config/fish/completions/streamctl.fish`

// completionCmd prints the shell completion scripts cobra generates.
func completionCmd(hidden bool) *cobra.Command {
	return &cobra.Command{
		Use:       "completion bash|zsh|fish|powershell",
		Short:     "Print a shell completion script",
		Long:      completionLong,
		Hidden:    hidden,
		ValidArgs: []string{"bash", "zsh", "fish", "powershell"},
		Args:      needArgs("SHELL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, out := cmd.Root(), cmd.OutOrStdout()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, true)
			case "zsh":
				return root.GenZshCompletion(out)
			case "fish":
				return root.GenFishCompletion(out, true)
			case "powershell":
				return root.GenPowerShellCompletionWithDesc(out)
			}
			return usagef("completion: unknown shell %q: use bash, zsh, fish or powershell", args[0])
		},
	}
}

// validate checks the global flags.
func (inv *invocation) validate() error {
	if f := inv.flags; f != nil {
		inv.set.apiSet = inv.set.apiSet || f.Changed("api-url")
		inv.set.serverSet = inv.set.serverSet || f.Changed("server") || f.Changed("grpc-addr")
	}
	if inv.set.serverSet && !inv.set.apiSet {
		api, err := serverAPIURL(inv.set.grpcAddr)
		if err != nil {
			return err
		}
		inv.set.apiURL = api
	}
	if inv.set.tls.set() {
		if !inv.set.apiSet {
			inv.set.apiURL = httpsDefault(inv.set.apiURL)
		}
		// Files that do not load fail every command, before it runs.
		if _, err := inv.s.transportFor(inv.set); err != nil {
			return err
		}
	}
	switch inv.set.output {
	case "table", "json":
	default:
		return usagef("--output %q: use table or json", inv.set.output)
	}
	if err := inv.validateLogin(); err != nil {
		return err
	}
	var err error
	if inv.set.apiURL, err = normalizeURL("--api-url", inv.set.apiURL); err != nil {
		return err
	}
	if inv.set.registryURL != "" {
		if inv.set.registryURL, err = normalizeURL("--schema-registry-url", inv.set.registryURL); err != nil {
			return err
		}
	}
	return nil
}

// serverAPIURL is the REST URL of the server at addr (the original's
// gRPC address, "host:port" or a URL): the same host, at the REST API's
// default port, over https when addr says https.
func serverAPIURL(addr string) (string, error) {
	raw := strings.TrimSpace(addr)
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return "", usagef("--server %q: want host:port or http://host:port", addr)
	}
	scheme := "http"
	if u.Scheme == "https" {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(u.Hostname(), "8080"), nil
}

func (inv *invocation) client() *client {
	api, err := normalizeURL("--api-url", inv.set.apiURL)
	if err != nil {
		api = inv.set.apiURL
	}
	reg := api + "/schemas" // the registry is served under the API's /schemas
	if inv.set.registryURL != "" {
		if reg, err = normalizeURL("--schema-registry-url", inv.set.registryURL); err != nil {
			reg = inv.set.registryURL
		}
	}
	return &client{hc: inv.s.httpClient(inv.set), api: api, registry: reg, user: inv.set.user, password: inv.set.password}
}

func (inv *invocation) out() printer {
	return printer{w: inv.s.stdout, json: inv.set.output == "json"}
}

// group is a command that only holds subcommands: alone it prints its
// help; with an unknown subcommand it is a usage error.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  noArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	c.AddCommand(subs...)
	return c
}

// noArgs refuses arguments, naming an unknown subcommand as such.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	if sugg := cmd.SuggestionsFor(args[0]); len(sugg) > 0 {
		msg += "; did you mean " + strings.Join(sugg, " or ") + "?"
	}
	if cmd.HasAvailableSubCommands() {
		msg += fmt.Sprintf(" (see '%s --help')", cmd.CommandPath())
	}
	return &usageError{msg: msg}
}

// needArgs wants exactly the named arguments.
func needArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) < len(names):
			return usagef("%s: missing %s (usage: %s)", cmdPath(cmd), strings.Join(names[len(args):], " "), cmd.UseLine())
		case len(args) > len(names):
			return usagef("%s: unexpected argument %q (usage: %s)", cmdPath(cmd), args[len(names)], cmd.UseLine())
		}
		return nil
	}
}

// cmdPath is the command's path without the program name, for messages
// that streamctl already prefixes.
func cmdPath(cmd *cobra.Command) string {
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
}

// requireFlags fails unless every named flag was given.
func requireFlags(cmd *cobra.Command, names ...string) error {
	var missing []string
	for _, n := range names {
		if !cmd.Flags().Changed(n) {
			missing = append(missing, "--"+n)
		}
	}
	if len(missing) > 0 {
		return usagef("%s: missing %s (usage: %s)", cmdPath(cmd), strings.Join(missing, ", "), cmd.UseLine())
	}
	return nil
}

// setFlagCompletion registers completion for a flag; registering can
// only fail for a flag that does not exist, a programming error.
func setFlagCompletion(cmd *cobra.Command, flag string, f cobra.CompletionFunc) {
	if err := cmd.RegisterFlagCompletionFunc(flag, f); err != nil {
		panic(err)
	}
}

func fixedCompletions(words ...string) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		var out []cobra.Completion
		for _, w := range words {
			if strings.HasPrefix(w, toComplete) {
				out = append(out, w)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// nameCache keeps names fetched for completion briefly, so that pressing
// Tab repeatedly in the REPL asks the server once.
type nameCache struct {
	mu      sync.Mutex
	entries map[string]cachedNames
}

type cachedNames struct {
	names []string
	at    time.Time
}

const nameCacheTTL = 5 * time.Second

func (nc *nameCache) get(ctx context.Context, kind string, fetch func(context.Context) ([]string, error)) []string {
	nc.mu.Lock()
	e, ok := nc.entries[kind]
	nc.mu.Unlock()
	if ok && time.Since(e.at) < nameCacheTTL {
		return e.names
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	names, err := fetch(ctx)
	if err != nil {
		return nil
	}
	nc.mu.Lock()
	if nc.entries == nil {
		nc.entries = make(map[string]cachedNames)
	}
	nc.entries[kind] = cachedNames{names: names, at: time.Now()}
	nc.mu.Unlock()
	return names
}

// completeNames completes the first argument (or a flag value, with
// anyArg) from names of kind fetched from the server.
func (inv *invocation) completeNames(kind string, anyArg bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 && !anyArg {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx := cmd.Context()
		if ctx == nil {
			ctx = context.Background()
		}
		c := inv.client()
		var fetch func(context.Context) ([]string, error)
		switch kind {
		case "topic":
			fetch = c.topicNames
		case "group":
			fetch = c.groupNames
		case "subject":
			fetch = c.subjectNames
		}
		var out []cobra.Completion
		for _, n := range inv.s.names.get(ctx, kind+" "+c.api+" "+c.registry, fetch) {
			if strings.HasPrefix(n, toComplete) {
				out = append(out, n)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
