//go:build !unix

package sqlstore

import "os"

// lockFile only creates the lock file where flock is not available: the
// guard against two processes sharing one database is best effort there.
func lockFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
}
