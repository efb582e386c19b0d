// Package sasl is the server side of the SASL mechanisms StreamHouse's
// Kafka listener offers: PLAIN (RFC 4616) and SCRAM-SHA-256 /
// SCRAM-SHA-512 (RFC 5802, RFC 7677), with the arithmetic of SCRAM
// credentials (salted password, stored and server keys). It knows no
// store and no listener: internal/auth gives a session its credential
// lookup and password check.
package sasl

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// SCRAM (RFC 5802; SHA-256 and SHA-512 as RFC 7677 and Kafka have them).
//
// The server side is written here from the RFC rather than taken from
// github.com/xdg-go/scram, whose server conversation does not fit Kafka in
// two ways a client can see: it requires the client-final nonce to equal
// the server's, where Kafka (and so librdkafka, which relies on it)
// accepts one that ends with it; and it answers an unknown user at the
// first step, which tells a guesser which users exist. Here an unknown
// user gets a made-up salt and fails at the proof, like a wrong password.
// The client side of every test is an independent implementation (the
// Kafka clients' own, and xdg-go/scram's for sarama).
//
// No SASLprep: passwords are used as their UTF-8 bytes, as Kafka, franz-go
// and librdkafka do (an ASCII password is the same either way).

// Mechanism names.
const (
	MechanismPlain       = "PLAIN"
	MechanismScramSHA256 = "SCRAM-SHA-256"
	MechanismScramSHA512 = "SCRAM-SHA-512"
)

// Iteration bounds of SCRAM credentials: Kafka's (4096 is also RFC 7677's
// minimum for SHA-256).
const (
	MinIterations = 4096
	MaxIterations = 16384
)

// maxMessage bounds one SASL message a client sends (Kafka bounds the
// whole receive at 512 KiB; a SCRAM or PLAIN message is well under 1 KiB).
const maxMessage = 64 << 10

// Mechanism is one SCRAM mechanism.
type Mechanism struct {
	Name string
	// KafkaType is the mechanism's number in Kafka's
	// Describe/AlterUserScramCredentials (1 SHA-256, 2 SHA-512).
	KafkaType int8
	hash      func() hash.Hash
	size      int
}

var (
	ScramSHA256 = &Mechanism{Name: MechanismScramSHA256, KafkaType: 1, hash: sha256.New, size: sha256.Size}
	ScramSHA512 = &Mechanism{Name: MechanismScramSHA512, KafkaType: 2, hash: sha512.New, size: sha512.Size}
)

// ScramMechanisms are the SCRAM mechanisms, in Kafka's order.
var ScramMechanisms = []*Mechanism{ScramSHA256, ScramSHA512}

// ScramMechanism returns the SCRAM mechanism of a name, or nil.
func ScramMechanism(name string) *Mechanism {
	for _, m := range ScramMechanisms {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// ScramMechanismByType returns the mechanism of a Kafka mechanism number,
// or nil.
func ScramMechanismByType(t int8) *Mechanism {
	for _, m := range ScramMechanisms {
		if m.KafkaType == t {
			return m
		}
	}
	return nil
}

// Size is the mechanism's hash size in bytes.
func (m *Mechanism) Size() int { return m.size }

func (m *Mechanism) hmac(key []byte, parts ...string) []byte {
	h := hmac.New(m.hash, key)
	for _, p := range parts {
		h.Write([]byte(p))
	}
	return h.Sum(nil)
}

func (m *Mechanism) digest(b []byte) []byte {
	h := m.hash()
	h.Write(b)
	return h.Sum(nil)
}

// SaltedPassword is Hi(password, salt, i) of RFC 5802: PBKDF2 with HMAC.
func (m *Mechanism) SaltedPassword(password string, salt []byte, iterations int) ([]byte, error) {
	sp, err := pbkdf2.Key(m.hash, password, salt, iterations, m.size)
	if err != nil {
		return nil, fmt.Errorf("%s salted password: %w", m.Name, err)
	}
	return sp, nil
}

// keys derives StoredKey and ServerKey from a salted password.
func (m *Mechanism) keys(salted []byte) (storedKey, serverKey []byte) {
	clientKey := m.hmac(salted, "Client Key")
	return m.digest(clientKey), m.hmac(salted, "Server Key")
}

// ClientKey is RFC 5802's ClientKey = HMAC(SaltedPassword, "Client
// Key"): what a SCRAM client proves it knows. Its digest is the stored
// key.
func (m *Mechanism) ClientKey(salted []byte) []byte { return m.hmac(salted, "Client Key") }

// ClientProof is RFC 5802's ClientProof for authMessage: ClientKey XOR
// HMAC(StoredKey, authMessage).
func (m *Mechanism) ClientProof(clientKey, storedKey []byte, authMessage string) []byte {
	proof := make([]byte, len(clientKey))
	subtle.XORBytes(proof, clientKey, m.hmac(storedKey, authMessage))
	return proof
}

// VerifyProof reports, in constant time, whether proof is a ClientProof
// for authMessage by the holder of the ClientKey whose digest is
// storedKey, as a SCRAM server checks client-final-message.
func (m *Mechanism) VerifyProof(storedKey, proof []byte, authMessage string) bool {
	if len(proof) != m.size || len(storedKey) != m.size {
		return false
	}
	clientKey := make([]byte, m.size)
	subtle.XORBytes(clientKey, proof, m.hmac(storedKey, authMessage))
	return subtle.ConstantTimeCompare(m.digest(clientKey), storedKey) == 1
}

// CredentialFromSalted is the stored credential for a salted password (as
// Kafka's AlterUserScramCredentials carries it): the salt, the iteration
// count and the two keys, never the salted password itself.
func (m *Mechanism) CredentialFromSalted(user string, salt, salted []byte, iterations int32) metadata.ScramCredential {
	stored, server := m.keys(salted)
	return metadata.ScramCredential{
		User: user, Mechanism: m.Name, Iterations: iterations,
		Salt: append([]byte(nil), salt...), StoredKey: stored, ServerKey: server,
	}
}

// saltBytes is the length of a salt the server makes.
const saltBytes = 32

// NewCredential makes a credential for password with a fresh random salt.
func (m *Mechanism) NewCredential(user, password string, iterations int32) (metadata.ScramCredential, error) {
	salt := make([]byte, saltBytes)
	_, _ = rand.Read(salt) // never fails (crypto/rand)
	sp, err := m.SaltedPassword(password, salt, int(iterations))
	if err != nil {
		return metadata.ScramCredential{}, err
	}
	return m.CredentialFromSalted(user, salt, sp, iterations), nil
}

// CheckPassword reports whether password matches c, comparing the keys in
// constant time; it also returns the stored key it derived.
func (m *Mechanism) CheckPassword(c metadata.ScramCredential, password string) (storedKey []byte, ok bool, err error) {
	sp, err := m.SaltedPassword(password, c.Salt, int(c.Iterations))
	if err != nil {
		return nil, false, err
	}
	stored, server := m.keys(sp)
	ok = subtle.ConstantTimeCompare(stored, c.StoredKey)&subtle.ConstantTimeCompare(server, c.ServerKey) == 1
	return stored, ok, nil
}

// Errors of a SASL exchange. Both end the exchange; Kafka answers both
// with SASL_AUTHENTICATION_FAILED and closes the connection.
var (
	// ErrMalformed: a message that does not follow the mechanism.
	ErrMalformed = errors.New("malformed SASL message")
	// ErrBadCredentials: an unknown user or a wrong password.
	ErrBadCredentials = errors.New("invalid credentials")
)

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Session is the server side of one SASL exchange.
type Session interface {
	// Mechanism is the SASL mechanism's name.
	Mechanism() string
	// Step takes the client's next message and returns the answer and
	// whether the exchange is over. An error ends it: ErrMalformed or
	// ErrBadCredentials (the client's doing), or a failure of the
	// credential lookup (no verdict).
	Step(ctx context.Context, msg []byte) (resp []byte, done bool, err error)
	// User is the authenticated user once Step said done without an
	// error.
	User() string
}

// CredentialLookup returns a user's credential for a mechanism, or an
// error wrapping metadata.ErrCredentialNotFound for an unknown user (any
// other error ends the exchange without a verdict: the store did not
// answer).
type CredentialLookup func(ctx context.Context, user string) (metadata.ScramCredential, error)

// NewScramServer starts a SCRAM exchange of mechanism m. fake makes the
// credential of a user lookup does not know, so that the exchange goes
// on and fails at the proof, like a wrong password (no user
// enumeration); nonce makes the server's part of the nonce (nil: 24
// random bytes).
func NewScramServer(m *Mechanism, lookup CredentialLookup, fake func(m *Mechanism, user string) metadata.ScramCredential, nonce func() string) Session {
	if nonce == nil {
		nonce = newNonce
	}
	return &scramServer{m: m, lookup: lookup, fake: fake, nonce: nonce}
}

// scramServer is the server side of one SCRAM exchange: Step takes
// client-first, then client-final.
type scramServer struct {
	m      *Mechanism
	lookup CredentialLookup
	fake   func(m *Mechanism, user string) metadata.ScramCredential
	nonce  func() string

	step        int
	user        string
	cred        metadata.ScramCredential
	known       bool
	gs2Header   string
	clientBare  string
	serverFirst string
	fullNonce   string
}

// parseClientFirst reads gs2-header and client-first-message-bare.
func (s *scramServer) parseClientFirst(msg string) (nonce string, err error) {
	// gs2-cbind-flag "," [ authzid ] ","
	flag, rest, ok := strings.Cut(msg, ",")
	if !ok {
		return "", malformed("client-first has no gs2 header")
	}
	switch {
	case flag == "n", flag == "y":
		// No channel binding (y: the client could, but we advertise no
		// SCRAM-*-PLUS).
	case strings.HasPrefix(flag, "p="):
		return "", malformed("channel binding is not supported")
	default:
		return "", malformed("bad gs2-cbind-flag %q", flag)
	}
	authz, bare, ok := strings.Cut(rest, ",")
	if !ok {
		return "", malformed("client-first has no authzid field")
	}
	var authzID string
	if authz != "" {
		a, ok := strings.CutPrefix(authz, "a=")
		if !ok {
			return "", malformed("bad authzid field")
		}
		if authzID, ok = decodeSaslName(a); !ok || authzID == "" {
			return "", malformed("bad authzid encoding")
		}
	}
	s.gs2Header = flag + "," + authz + ","
	s.clientBare = bare
	fields := strings.Split(bare, ",")
	if strings.HasPrefix(fields[0], "m=") {
		return "", malformed("mandatory extensions are not supported")
	}
	if len(fields) < 2 {
		return "", malformed("client-first-message-bare needs a username and a nonce")
	}
	n, ok := strings.CutPrefix(fields[0], "n=")
	if !ok {
		return "", malformed("no username")
	}
	if s.user, ok = decodeSaslName(n); !ok || s.user == "" {
		return "", malformed("bad username encoding")
	}
	if nonce, ok = strings.CutPrefix(fields[1], "r="); !ok || nonce == "" || !printable(nonce) {
		return "", malformed("bad client nonce")
	}
	for _, ext := range fields[2:] {
		// Kafka's one extension: delegation tokens, which StreamHouse
		// does not issue.
		if ext == "tokenauth=true" {
			return "", fmt.Errorf("%w: delegation tokens are not supported", ErrBadCredentials)
		}
	}
	// Kafka: the authorization identity, when given, must be the user.
	if authzID != "" && authzID != s.user {
		return "", fmt.Errorf("%w: authorization id %q is not the username", ErrBadCredentials, authzID)
	}
	return nonce, nil
}

// Step implements Session.
func (s *scramServer) Step(ctx context.Context, msg []byte) (resp []byte, done bool, err error) {
	if len(msg) > maxMessage {
		return nil, true, malformed("message of %d bytes", len(msg))
	}
	if !utf8.Valid(msg) {
		return nil, true, malformed("not UTF-8")
	}
	s.step++
	switch s.step {
	case 1:
		clientNonce, err := s.parseClientFirst(string(msg))
		if err != nil {
			return nil, true, err
		}
		s.cred, err = s.lookup(ctx, s.user)
		switch {
		case errors.Is(err, metadata.ErrCredentialNotFound):
			s.cred, s.known = s.fake(s.m, s.user), false
		case err != nil:
			return nil, true, err
		default:
			s.known = true
		}
		s.fullNonce = clientNonce + s.nonce()
		s.serverFirst = "r=" + s.fullNonce + ",s=" + base64.StdEncoding.EncodeToString(s.cred.Salt) + ",i=" + strconv.Itoa(int(s.cred.Iterations))
		return []byte(s.serverFirst), false, nil
	case 2:
		return s.final(string(msg))
	}
	return nil, true, malformed("message after the exchange ended")
}

// final checks client-final-message and answers server-final-message.
func (s *scramServer) final(msg string) ([]byte, bool, error) {
	i := strings.LastIndex(msg, ",p=")
	if i < 0 {
		return nil, true, malformed("client-final has no proof")
	}
	withoutProof, proofB64 := msg[:i], msg[i+len(",p="):]
	proof, err := base64.StdEncoding.DecodeString(proofB64)
	if err != nil || len(proof) != s.m.size {
		return nil, true, malformed("bad proof")
	}
	fields := strings.Split(withoutProof, ",")
	if len(fields) < 2 {
		return nil, true, malformed("client-final needs channel binding and nonce")
	}
	cb, ok := strings.CutPrefix(fields[0], "c=")
	if !ok {
		return nil, true, malformed("no channel binding")
	}
	cbind, err := base64.StdEncoding.DecodeString(cb)
	if err != nil || string(cbind) != s.gs2Header {
		return nil, true, malformed("channel binding does not match the gs2 header")
	}
	nonce, ok := strings.CutPrefix(fields[1], "r=")
	// Kafka checks that the nonce ends with the server's (librdkafka
	// relies on it), not that it is equal.
	if !ok || !strings.HasSuffix(nonce, s.fullNonce) {
		return nil, true, malformed("nonce does not match")
	}
	authMessage := s.clientBare + "," + s.serverFirst + "," + withoutProof
	clientSignature := s.m.hmac(s.cred.StoredKey, authMessage)
	clientKey := make([]byte, len(proof))
	subtle.XORBytes(clientKey, proof, clientSignature)
	valid := subtle.ConstantTimeCompare(s.m.digest(clientKey), s.cred.StoredKey) == 1
	if !valid || !s.known {
		return nil, true, fmt.Errorf("%w: user %q", ErrBadCredentials, s.user)
	}
	serverSignature := s.m.hmac(s.cred.ServerKey, authMessage)
	return []byte("v=" + base64.StdEncoding.EncodeToString(serverSignature)), true, nil
}

// User implements Session.
func (s *scramServer) User() string { return s.user }

// Mechanism implements Session.
func (s *scramServer) Mechanism() string { return s.m.Name }

// decodeSaslName undoes RFC 5802's escaping of ',' (=2C) and '=' (=3D); a
// '=' followed by anything else is malformed.
func decodeSaslName(s string) (string, bool) {
	if !strings.Contains(s, "=") {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", false
		}
		i += 2
	}
	return b.String(), true
}

// printable is RFC 5802's printable: %x21-2B / %x2D-7E.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

// newNonce is 24 random bytes, base64 (printable, no ',').
func newNonce() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawStdEncoding.EncodeToString(b)
}
