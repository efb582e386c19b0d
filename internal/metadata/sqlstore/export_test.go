package sqlstore

import "time"

// SetListenPing sets how long a PostgreSQL store's listening connection
// may be quiet before it is pinged, and returns a func counting the pings.
func SetListenPing(s *Store, d time.Duration) (pings func() int64) {
	b := s.b.(*pgBackend)
	b.listenPing = d
	return b.pings.Load
}
