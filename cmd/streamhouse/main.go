// Command streamhouse is the StreamHouse server: S3-native event streaming
// with the Kafka protocol, a REST API and a schema registry in one process.
// All settings come from environment variables (see README.md).
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
