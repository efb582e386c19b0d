// Command streamhouse is the StreamHouse server: S3-native event streaming
// with the Kafka protocol, a REST API and a schema registry in one process.
// All settings come from environment variables (see README.md).
// `streamhouse healthcheck` asks a running agent's /ready (same
// environment, over HTTPS when TLS is on) and exits 0 when it is ready, 1 otherwise.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/streamhouse/streamhouse/internal/config"
	"github.com/streamhouse/streamhouse/internal/server"
)

func main() {
	cfg, err := config.Load(os.LookupEnv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "streamhouse: bad configuration:\n%v\n", err)
		os.Exit(2)
	}
	if len(os.Args) > 1 {
		if os.Args[1] != "healthcheck" || len(os.Args) > 2 {
			fmt.Fprintf(os.Stderr, "usage: streamhouse [healthcheck]\n")
			os.Exit(2)
		}
		if err := healthcheck(context.Background(), cfg); err != nil {
			fmt.Fprintf(os.Stderr, "streamhouse healthcheck: %v\n", err)
			os.Exit(1)
		}
		return
	}
	logger := cfg.NewLogger(os.Stderr)
	logger.Info("starting streamhouse", "config", cfg)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv, err := server.New(ctx, cfg, logger)
	if err != nil {
		logger.Error("start failed", "err", err)
		os.Exit(1)
	}
	if err := srv.Run(ctx); err != nil {
		logger.Error("stopped with error", "err", err)
		os.Exit(1)
	}
}
