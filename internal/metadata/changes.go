package metadata

import "context"

// Change names a kind of stored setting that agents cache and reload when
// it changes.
type Change string

// ChangeQuotas: client quotas changed (QuotaStore.AlterClientQuotas).
const ChangeQuotas Change = "quotas"

// ChangeNotifier is implemented by stores that tell every agent when a
// setting agents cache changes (sqlstore: PostgreSQL LISTEN/NOTIFY, and
// within one process), so that caches reload at once instead of at their
// next periodic reload. It is optional: without it, callers only reload
// periodically.
type ChangeNotifier interface {
	// WatchChanges hands w the changes made through any agent until ctx
	// ends, and returns ctx's error. Delivery is best effort: while
	// w.Listening last reported false, notices may be lost.
	WatchChanges(ctx context.Context, w ChangeWatch) error
}

// ChangeWatch receives change notices: Changed with the kind of setting
// that changed, after the change is committed; Listening with false when
// notices may be lost from now on, and with true once they flow again
// (reload what matters then). Neither may block.
type ChangeWatch struct {
	Changed   func(Change)
	Listening func(ok bool)
}
