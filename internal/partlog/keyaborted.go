package partlog

import (
	"sort"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// abortedTest returns a test of whether a batch belongs to one of the
// aborted transactions: they are grouped by producer and sorted by first
// offset (a producer's transactions do not overlap), so a test is a map
// lookup and a binary search, O(log n), where a scan of the whole list for
// every batch made a key compaction pass quadratic.
func abortedTest(aborted []metadata.AbortedTxn) func(batch.Header) bool {
	byProducer := make(map[int64][]metadata.AbortedTxn)
	for _, a := range aborted {
		byProducer[a.ProducerID] = append(byProducer[a.ProducerID], a)
	}
	for _, as := range byProducer {
		sort.Slice(as, func(i, j int) bool { return as[i].FirstOffset < as[j].FirstOffset })
	}
	return func(h batch.Header) bool {
		if !h.IsTransactional() || h.IsControl() {
			return false
		}
		as := byProducer[h.ProducerID]
		// The last transaction starting at or before the batch.
		i := sort.Search(len(as), func(i int) bool { return as[i].FirstOffset > h.BaseOffset }) - 1
		return i >= 0 && h.BaseOffset <= as[i].LastOffset
	}
}
