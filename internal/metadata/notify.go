package metadata

import "context"

// CommitNotifier is implemented by stores that tell every agent about
// commits as they land (sqlstore: PostgreSQL LISTEN/NOTIFY, and within one
// process), so that long polls on partitions led by another agent need not
// poll the store. It is optional: a Store without it is polled.
type CommitNotifier interface {
	// WatchCommits hands w the commits of every agent until ctx ends, and
	// returns ctx's error. Delivery is best effort: while w.Listening last
	// reported false, notices may be lost.
	WatchCommits(ctx context.Context, w CommitWatch) error
}

// CommitWatch receives commit notices: Advanced with each partition a commit
// advanced and its new high watermark; Listening with false when notices may
// be lost from now on (a dropped connection), and with true once they flow
// again (notices sent in between are lost: re-read what matters). Neither
// may block.
type CommitWatch struct {
	Advanced  func(tp TopicPartition, hw int64)
	Listening func(ok bool)
}
