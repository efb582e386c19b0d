// This file owns the key rules shared by every backend.

package objstore

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrInvalidKey is returned (wrapped) for keys that break ValidateKey's rules.
var ErrInvalidKey = errors.New("invalid object key")

// MaxKeyLen is S3's limit on key length in bytes.
const MaxKeyLen = 1024

// reservedPrefix starts the names backends use for their own bookkeeping
// (the local folder's temporary files); keys may not use it.
const reservedPrefix = ".tmp"

// ValidateKey reports whether key can be stored by every backend. A key is a
// "/"-separated path of non-empty components: valid UTF-8, at most MaxKeyLen
// bytes, no NUL, no leading or trailing "/", no "//", no "." or ".."
// component, and no component starting with ".tmp" (reserved).
//
// The rules are the intersection of what a POSIX folder and S3 accept, and
// all backends enforce them (not only the folder one) so that a key which
// passes the in-memory tests cannot fail in production on another backend.
// They also make path traversal out of the local root impossible.
func ValidateKey(key string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidKey, key, why)
	}
	switch {
	case key == "":
		return bad("empty")
	case len(key) > MaxKeyLen:
		return bad(fmt.Sprintf("longer than %d bytes", MaxKeyLen))
	case !utf8.ValidString(key):
		return bad("not valid UTF-8")
	case strings.IndexByte(key, 0) >= 0:
		return bad("contains NUL")
	case key[0] == '/':
		return bad("absolute (starts with /)")
	}
	for comp := range strings.SplitSeq(key, "/") {
		switch {
		case comp == "":
			return bad("empty path component")
		case comp == "." || comp == "..":
			return bad("contains a . or .. component")
		case strings.HasPrefix(comp, reservedPrefix):
			return bad("component starts with reserved " + reservedPrefix)
		}
	}
	return nil
}
