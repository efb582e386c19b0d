package metadata

import (
	"context"
	"errors"
	"time"
)

// Users (authentication). A user exists while it has at least one SCRAM
// credential, as in Kafka: one per mechanism (SCRAM-SHA-256,
// SCRAM-SHA-512), each a salt, an iteration count and the two keys RFC
// 5802 derives from the salted password. Neither the password nor the
// salted password is ever stored: StoredKey = H(HMAC(SaltedPassword,
// "Client Key")) and ServerKey = HMAC(SaltedPassword, "Server Key") verify
// a login without being able to make one. internal/auth owns the
// arithmetic; the store only keeps the rows.

// ErrCredentialNotFound: the user has no credential of that mechanism.
var ErrCredentialNotFound = errors.New("scram credential not found")

// ScramCredential is one user's credential for one SCRAM mechanism.
type ScramCredential struct {
	User       string
	Mechanism  string // "SCRAM-SHA-256" or "SCRAM-SHA-512"
	Salt       []byte
	StoredKey  []byte
	ServerKey  []byte
	Iterations int32
	UpdatedAt  time.Time // set by the store (millisecond precision)
}

// UserStore is the users part of Store.
type UserStore interface {
	// PutScramCredential inserts c, or replaces the credential c.User
	// has for c.Mechanism (a password change).
	PutScramCredential(ctx context.Context, c ScramCredential) error
	// CreateScramUser stores creds, every one for the same user, in one
	// transaction, but only if that user has no credential at all yet:
	// created is false, and nothing is stored, when the user exists.
	// Agents starting at once with the same bootstrap users may both
	// store some: the credentials of one password, whichever wins.
	CreateScramUser(ctx context.Context, creds []ScramCredential) (created bool, err error)
	// GetScramCredential returns user's credential for mechanism, or
	// ErrCredentialNotFound.
	GetScramCredential(ctx context.Context, user, mechanism string) (ScramCredential, error)
	// ListScramCredentials returns every credential of every user,
	// ordered by user and mechanism.
	ListScramCredentials(ctx context.Context) ([]ScramCredential, error)
	// DeleteScramCredential removes user's credential for mechanism, or
	// returns ErrCredentialNotFound.
	DeleteScramCredential(ctx context.Context, user, mechanism string) error
}
