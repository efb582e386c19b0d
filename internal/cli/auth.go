package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"golang.org/x/term"
)

// Logging in (a server with AUTH_ENABLED, docs/security.md). --user and
// --password (STREAMHOUSE_USER, STREAMHOUSE_PASSWORD) go with every
// request: HTTP Basic on the REST API and the schema registry, SASL on
// the Kafka commands (perf, transaction), SCRAM-SHA-256 unless
// --sasl-mechanism says otherwise. A user without a password is asked for
// one, without echo, when stdin is a terminal (the REPL asks once, at its
// start); elsewhere it is a usage error.

const defaultSASLMechanism = "SCRAM-SHA-256"

// validateLogin checks the login flags and asks for a missing password.
func (inv *invocation) validateLogin() error {
	if f := inv.flags; f != nil && f.Changed("password") {
		inv.set.passwordSet = true
	}
	switch strings.ToUpper(inv.set.saslMechanism) {
	case "":
		inv.set.saslMechanism = defaultSASLMechanism // settings made without Run's defaults
	case "SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN":
		inv.set.saslMechanism = strings.ToUpper(inv.set.saslMechanism)
	default:
		return usagef("--sasl-mechanism %q: use SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN", inv.set.saslMechanism)
	}
	if inv.set.user == "" || inv.set.passwordSet {
		return nil
	}
	pw, err := inv.s.readPassword(inv.set.user)
	if err != nil {
		return err
	}
	inv.set.password, inv.set.passwordSet = pw, true
	return nil
}

// readPassword asks for user's password on the terminal, without echo.
func (s *session) readPassword(user string) (string, error) {
	in, ok := s.stdin.(*os.File)
	if !ok || !isTerminal(in) {
		return "", usagef("--user %s needs a password: give --password or set STREAMHOUSE_PASSWORD (or run on a terminal to be asked)", user)
	}
	fd := int(in.Fd())
	restore, err := echoOff(fd)
	if err != nil {
		return "", err
	}
	defer restore()
	fmt.Fprintf(s.stderr, "Password for %s: ", user)
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(s.stderr)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	return string(b), nil
}

// kafkaLogin is the Kafka client's SASL option, none without a user.
func (inv *invocation) kafkaLogin() []kgo.Opt {
	u, p := inv.set.user, inv.set.password
	if u == "" {
		return nil
	}
	switch inv.set.saslMechanism {
	case "PLAIN":
		return []kgo.Opt{kgo.SASL(plain.Auth{User: u, Pass: p}.AsMechanism())}
	case "SCRAM-SHA-512":
		return []kgo.Opt{kgo.SASL(scram.Auth{User: u, Pass: p}.AsSha512Mechanism())}
	}
	return []kgo.Opt{kgo.SASL(scram.Auth{User: u, Pass: p}.AsSha256Mechanism())}
}
