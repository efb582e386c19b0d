// Command streamctl is StreamHouse's command-line client and REPL; the
// commands live in internal/cli. This only wires it to the process: its
// arguments, standard streams, environment and Ctrl+C.
package main

import (
	"context"
	"os"
	"os/signal"

	"github.com/streamhouse/streamhouse/internal/cli"
)

func main() {
	// SIGINT cancels the running command (in the REPL: back to the
	// prompt); SIGTERM keeps its default action.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	ctx := cli.WithInterrupts(context.Background(), sigs)
	os.Exit(cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}
