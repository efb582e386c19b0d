// Package fault holds the fault-injection test: three real streamhouse
// agents on a private PostgreSQL and a private S3 server (versitygw), each
// agent reaching both through its own TCP proxy; idempotent producers and
// consumer groups recording everything they see; a seeded nemesis that
// kills, pauses and cuts off agents and takes the stores away; and a
// checker of the promises (no acknowledged write lost, duplicated or
// reordered, one record per offset, committed offsets never going back, one
// owner per partition per group generation, every agent ready at the end).
//
// Beside it runs a transactional workload (txnworkload_test.go):
// transactional producers committing or aborting small transactions over
// the partitions of their own topic, a read_committed reader, and a
// consume-transform-produce pipeline (franz-go's GroupTransactSession); a
// fault kind kills -9 the agent a commit's EndTxn was just written to (the
// transaction coordinator) while the commit is in flight. Its checks
// (txncheck_test.go): nothing committed lost, no aborted record visible to
// read_committed (at the end or during the run), every transaction visible
// all or nothing (unknown outcomes included), no transaction left hanging
// (the last stable offset reaches the high watermark once the producers
// stopped), and the pipeline's output holding every input record exactly
// once.
//
// A third workload (compactworkload_test.go) writes a bounded key space,
// with tombstones, to a topic with cleanup.policy=compact whose key
// compaction runs every few seconds, and rereads it from the start during
// the run. Its checks (compactcheck_test.go): only Kafka's promises for a
// compacted topic (every record read is one that was sent, an acknowledged
// one only at its offset; offsets increase; each key's newest acknowledged
// write ends the final log, or the key is gone after its tombstone), and
// that key compaction removed something.
//
// The package has no code of its own. The test starts its own services
// from the binaries scripts/services.sh installs (PostgreSQL's under
// /usr/lib/postgresql, versitygw under ~/.cache/streamhouse/bin); it skips
// without them unless STREAMHOUSE_REQUIRE_SERVICES=1. The short run (a
// two-minute nemesis, about three minutes in all):
//
//	go test -race -count=1 -v -run TestFaultInjection ./tests/fault
//
// A long one: STREAMHOUSE_FAULT_DURATION=30m with -timeout 60m.
// STREAMHOUSE_FAULT_SEED=<n> replays a nemesis schedule (the seed is
// logged first); STREAMHOUSE_FAULT_KEEP=1 keeps the agents' logs and data
// of a run that passed (a failed run keeps them anyway). The last line (with -v, or on failure) is the summary:
// counts, faults, the longest time a partition had no serving leader.
package fault
