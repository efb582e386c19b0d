// Package cli is streamctl, StreamHouse's command-line client: its commands
// (topics, produce, consume, SQL, schemas, consumer groups, offsets, the
// perf load tools, transactions), their table and JSON output, shell completion, and the
// interactive REPL.
//
// Every command speaks REST to the server (STREAMHOUSE_API_URL) or the
// Confluent schema registry API (SCHEMA_REGISTRY_URL), except perf and
// transaction, which speak the Kafka protocol through franz-go; the gRPC address
// (STREAMHOUSE_ADDR, --grpc-addr) is accepted for compatibility with the
// original streamctl and not used. cmd/streamctl only wires Run to the
// process.
package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// Exit codes.
const (
	ExitOK          = 0   // success
	ExitError       = 1   // the server refused, could not be reached, or a check failed
	ExitUsage       = 2   // a bad command line: unknown command or flag, missing argument
	ExitInterrupted = 130 // Ctrl+C stopped a command that had not finished (not consume --follow)
)

// Defaults of the connection settings; they match the server's defaults.
// The schema registry's default is the API URL + /schemas.
const (
	defaultAPIURL   = "http://localhost:8080"
	defaultGRPCAddr = "http://localhost:50051"
)

type interruptsKey struct{}

// WithInterrupts returns a ctx that hands Run the process's Ctrl+C
// (SIGINT) notifications. Each one cancels the running command: a one-shot
// command stops (consume --follow with exit status 0, others with 130);
// in the REPL it returns to the prompt. Without it, cancelling ctx is the
// only way to stop a command, and it also ends a REPL session.
func WithInterrupts(ctx context.Context, sigs <-chan os.Signal) context.Context {
	return context.WithValue(ctx, interruptsKey{}, sigs)
}

// usageError is a bad command line (exit status 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// errExit is the exit command: it ends the REPL, and does nothing on the
// command line.
var errExit = errors.New("exit")

// settings are the global flags.
type settings struct {
	output      string // "table" or "json"
	apiURL      string
	registryURL string
	// grpcAddr is the original's server address (--server, -s,
	// --grpc-addr, STREAMHOUSE_ADDR). Every command speaks REST, so it
	// only matters when the REST URL is not given: the REST API is then
	// taken on the same host, at its default port (serverAPIURL).
	grpcAddr string
	// apiSet and serverSet say whether the REST URL and the server
	// address were given (flag or environment) rather than defaulted.
	apiSet, serverSet bool
	tls               tlsFiles // --ca-file, --cert-file, --key-file (tls.go)
	// user and password log in on every transport (auth.go): HTTP Basic
	// on REST and the schema registry, SASL (saslMechanism) on Kafka.
	// passwordSet: a password was given, even an empty one.
	user, password string
	passwordSet    bool
	saslMechanism  string
}

// session is one run of streamctl: a single command, or a REPL session
// running many.
type session struct {
	stdin      io.Reader
	stdout     io.Writer
	stderr     io.Writer
	getenv     func(string) string
	interrupts <-chan os.Signal
	defaults   settings // the global flags' defaults (from env; in the REPL, as last set)
	repl       bool     // inside the REPL
	transport  *http.Transport
	// tlsTransports are the transports for TLS files (tls.go).
	tlsTransports map[tlsFiles]*http.Transport
	names         nameCache
	sql           sqlState // the REPL's SQL mode (sqlmode.go)
}

// Run runs streamctl with args (without the program name) and returns its
// exit status. With no command it starts the REPL: interactive (history,
// tab completion) when stdin and stdout are the process's terminal,
// otherwise reading commands line by line from stdin. getenv reads the
// environment (os.Getenv; nil means an empty environment). Output goes to
// stdout; errors go to stderr as "streamctl: message".
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	s := &session{
		stdin:  stdin,
		stdout: stdout,
		stderr: stderr,
		getenv: getenv,
		defaults: settings{
			tls: tlsFiles{
				caFile:   strings.TrimSpace(getenv("STREAMHOUSE_CA_FILE")),
				certFile: strings.TrimSpace(getenv("STREAMHOUSE_CERT_FILE")),
				keyFile:  strings.TrimSpace(getenv("STREAMHOUSE_KEY_FILE")),
			},
			output:        "table",
			apiURL:        envOr(getenv, "STREAMHOUSE_API_URL", defaultAPIURL),
			registryURL:   strings.TrimSpace(getenv("SCHEMA_REGISTRY_URL")), // "": the API URL + /schemas
			grpcAddr:      envOr(getenv, "STREAMHOUSE_ADDR", defaultGRPCAddr),
			apiSet:        strings.TrimSpace(getenv("STREAMHOUSE_API_URL")) != "",
			serverSet:     strings.TrimSpace(getenv("STREAMHOUSE_ADDR")) != "",
			user:          strings.TrimSpace(getenv("STREAMHOUSE_USER")),
			password:      getenv("STREAMHOUSE_PASSWORD"),
			passwordSet:   getenv("STREAMHOUSE_PASSWORD") != "",
			saslMechanism: envOr(getenv, "STREAMHOUSE_SASL_MECHANISM", defaultSASLMechanism),
		},
		transport: newTransport(),
	}
	s.interrupts, _ = ctx.Value(interruptsKey{}).(<-chan os.Signal)
	defer s.closeTransports()
	if o := getenv("STREAMCTL_OUTPUT"); o != "" {
		s.defaults.output = o
	}
	return s.runCommand(ctx, args)
}

func envOr(getenv func(string) string, name, def string) string {
	if v := strings.TrimSpace(getenv(name)); v != "" {
		return v
	}
	return def
}

// runCommand runs one command line (args without the program name) and
// returns its exit status; the root command with nothing to run starts the
// REPL.
func (s *session) runCommand(ctx context.Context, args []string) int {
	res := s.execute(ctx, args)
	if res.startREPL && !s.repl {
		if res.interrupted {
			return ExitInterrupted
		}
		s.repl = true
		return s.runREPL(ctx)
	}
	return res.code
}

// result is how one command line ended.
type result struct {
	code      int  // exit status
	exit      bool // the exit command: end the REPL
	startREPL bool // the root command with no subcommand
	// interrupted: an interrupt arrived while the command ran.
	interrupted bool
}

// execute runs one command line, reports its error on stderr, and returns
// how it ended. An interrupt while it runs cancels its context.
func (s *session) execute(ctx context.Context, args []string) result {
	cmdCtx, interrupted, stop := s.commandContext(ctx)
	root, inv := s.newRoot()
	if args == nil {
		args = []string{} // cobra reads os.Args for nil
	}
	root.SetArgs(originalConsumerFlags(args))
	root.SetIn(s.stdin)
	root.SetOut(s.stdout)
	root.SetErr(s.stderr)
	err := root.ExecuteContext(cmdCtx)
	stop() // before asking interrupted: the watch may still take one
	hit := interrupted()
	return result{
		code:        s.report(err, hit),
		exit:        errors.Is(err, errExit),
		startREPL:   inv.startREPL,
		interrupted: hit,
	}
}

// report prints err (if any) and returns the exit status for it.
func (s *session) report(err error, interrupted bool) int {
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, errExit):
		return ExitOK
	case errors.As(err, &ue):
		fmt.Fprintf(s.stderr, "streamctl: %s\n", ue.msg)
		return ExitUsage
	case errors.Is(err, context.Canceled):
		if interrupted {
			fmt.Fprintln(s.stderr, "streamctl: interrupted")
		} else {
			fmt.Fprintln(s.stderr, "streamctl: cancelled")
		}
		return ExitInterrupted
	default:
		fmt.Fprintf(s.stderr, "streamctl: %s\n", err)
		return ExitError
	}
}

// commandContext derives the context of one command: cancelled with ctx,
// or by an interrupt while the command runs. interrupted reports whether an
// interrupt cancelled it; stop ends the watch (call it when the command
// returns, so that interrupts between commands are left to the REPL).
func (s *session) commandContext(ctx context.Context) (cmdCtx context.Context, interrupted func() bool, stop func()) {
	cmdCtx, cancel := context.WithCancel(ctx)
	if s.interrupts == nil {
		return cmdCtx, func() bool { return false }, cancel
	}
	var hit atomic.Bool
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		select {
		case <-s.interrupts:
			hit.Store(true)
			cancel()
		case <-done:
		}
	}()
	return cmdCtx, hit.Load, func() {
		close(done)
		<-exited
		cancel()
	}
}

// newTransport is an HTTP transport with bounded connection set-up and no
// overall timeout (consume long-polls).
func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = 0
	t.TLSHandshakeTimeout = 10 * time.Second
	t.TLSClientConfig = withoutClientCert(&tls.Config{MinVersion: tls.VersionTLS12})
	return t
}
