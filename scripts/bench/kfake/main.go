// Command kfake serves franz-go's in-memory fake Kafka broker (kfake) on
// one address until it is killed: the "no durability" yardstick of
// scripts/bench/run.sh. It prints "ready <addr>" on stdout once it
// listens.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	port := flag.Int("port", 0, "port to listen on (0: any free port)")
	flag.Parse()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(*port))
	if err != nil {
		log.Fatalf("kfake: %v", err)
	}
	defer c.Close()
	fmt.Println("ready", c.ListenAddrs()[0])
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
}
