// Command dashboard-shots is the Go half of scripts/dashboard-shots.sh:
// it renders the Grafana dashboards of deploy/grafana/dashboards from a
// real Prometheus into PNG images for docs/operations.md, and drives the
// two parts of the script's workload that streamctl cannot (a gRPC client,
// and creating the S3 bucket).
//
//	dashboard-shots render -prom URL -from UNIX -to UNIX -scrape 5s -out docs/img
//	dashboard-shots grpc -addr HOST:PORT -topic T -duration 4m
//	dashboard-shots bucket -endpoint URL -bucket NAME
//
// render reads each dashboard's JSON (panels with gridPos, titles, units,
// targets with their PromQL and legendFormat, template variables),
// resolves the variables as Grafana does for one Prometheus datasource
// (with its scrape interval as the datasource's timeInterval), asks
// Prometheus's HTTP API for each target (query_range, the step Grafana
// would use), and writes one self-contained HTML page per dashboard
// (inline SVG, no script) laid out on Grafana's grid, which headless
// Chromium turns into a PNG. A target without data (no series, or only
// NaN) is listed and makes render exit with status 1, after writing the
// pages for inspection but not the images.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "render":
		err = renderCmd(ctx, os.Args[2:])
	case "grpc":
		err = grpcCmd(ctx, os.Args[2:])
	case "bucket":
		err = bucketCmd(ctx, os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "dashboard-shots %s: %v\n", os.Args[1], err)
		var nd *noDataError
		if errors.As(err, &nd) {
			os.Exit(1)
		}
		os.Exit(2)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: dashboard-shots render|grpc|bucket [flags] (see -h of each)")
	os.Exit(2)
}

func renderCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("render", flag.ExitOnError)
	var o renderOpts
	var from, to int64
	fs.StringVar(&o.prom, "prom", "", "Prometheus base URL (required)")
	fs.StringVar(&o.dashboards, "dashboards", "deploy/grafana/dashboards", "folder of dashboard JSON files")
	fs.Int64Var(&from, "from", 0, "start of the time range, Unix seconds (required)")
	fs.Int64Var(&to, "to", 0, "end of the time range, Unix seconds (required)")
	fs.DurationVar(&o.scrape, "scrape", 15*time.Second, "Prometheus's scrape interval: the datasource's timeInterval for $__interval and $__rate_interval")
	fs.StringVar(&o.out, "out", "docs/img", "folder for dashboard-<name>.png")
	fs.StringVar(&o.work, "work", "", "folder for the HTML pages (required)")
	fs.StringVar(&o.chromium, "chromium", "chromium", "Chromium binary")
	fs.IntVar(&o.width, "width", 1600, "image width in pixels")
	fs.IntVar(&o.maxBytes, "max-bytes", 300<<10, "largest PNG allowed, in bytes")
	_ = fs.Parse(args)
	if o.prom == "" || o.work == "" || from <= 0 || to <= from {
		return errors.New("-prom, -work, -from and -to (after -from) are required")
	}
	o.from, o.to = time.Unix(from, 0).UTC(), time.Unix(to, 0).UTC()
	return render(ctx, o)
}
