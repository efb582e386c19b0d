package sasl

import (
	"bytes"
	"context"
	"fmt"
	"unicode/utf8"
)

// PLAIN (RFC 4616): one message, [authzid] NUL authcid NUL passwd.

// ParsePlain splits a PLAIN message. The user and the password must be
// non-empty; none of the three may hold NUL (the separator), and all must
// be UTF-8.
func ParsePlain(msg []byte) (authzID, user, password string, err error) {
	if len(msg) > maxMessage {
		return "", "", "", malformed("PLAIN message of %d bytes", len(msg))
	}
	parts := bytes.Split(msg, []byte{0})
	if len(parts) != 3 {
		return "", "", "", malformed("PLAIN message has %d NUL-separated fields, want 3", len(parts))
	}
	for _, p := range parts {
		if !utf8.Valid(p) {
			return "", "", "", malformed("PLAIN field is not UTF-8")
		}
	}
	if len(parts[1]) == 0 || len(parts[2]) == 0 {
		return "", "", "", malformed("PLAIN user or password is empty")
	}
	return string(parts[0]), string(parts[1]), string(parts[2]), nil
}

// NewPlainServer starts a PLAIN exchange whose password check is verify:
// nil for a good password, an error wrapping ErrBadCredentials for a bad
// one, any other error when it could not check.
func NewPlainServer(verify func(ctx context.Context, user, password string) error) Session {
	return &plainServer{verify: verify}
}

// plainServer checks one PLAIN message.
type plainServer struct {
	verify func(ctx context.Context, user, password string) error
	user   string
	done   bool
}

// Step implements Session.
func (s *plainServer) Step(ctx context.Context, msg []byte) ([]byte, bool, error) {
	if s.done {
		return nil, true, malformed("message after the exchange ended")
	}
	s.done = true
	authz, user, password, err := ParsePlain(msg)
	if err != nil {
		return nil, true, err
	}
	// Kafka: the authorization identity, when given, must be the user.
	if authz != "" && authz != user {
		return nil, true, fmt.Errorf("%w: authorization id %q is not the username", ErrBadCredentials, authz)
	}
	if err := s.verify(ctx, user, password); err != nil {
		return nil, true, err
	}
	s.user = user
	return nil, true, nil
}

// User implements Session.
func (s *plainServer) User() string { return s.user }

// Mechanism implements Session.
func (s *plainServer) Mechanism() string { return MechanismPlain }
