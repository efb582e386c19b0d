package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/auth"
)

// AlterUserScramCredentials, key 51.
//
// Version 0 (flexible). Deletions name a user and mechanism (1
// SCRAM-SHA-256, 2 SCRAM-SHA-512); upsertions carry the salt and the
// salted password the client computed (as kadm and the Java admin client
// send them), from which the stored and server keys are derived: the
// salted password itself is never stored. One result per user, in
// request order. A user's alterations are checked before any is
// written (an invalid one applies none), then written upserts first: a
// store failing midway can leave a user's upserts without its deletions,
// never without a credential. Kafka's errors: DUPLICATE_RESOURCE (a user and mechanism altered
// twice in the request), UNSUPPORTED_SASL_MECHANISM, UNACCEPTABLE_CREDENTIAL
// (iterations outside 4096..16384, an empty salt or salted password, an
// empty user name, or one StreamHouse does not accept: see
// auth.CheckUserName), RESOURCE_NOT_FOUND (deleting a credential that
// does not exist). A store that does not answer: COORDINATOR_NOT_AVAILABLE
// for the users not yet applied.

func init() { register(51, 0, 0, handleAlterUserScramCredentials) }

// scramAlteration is one deletion or upsertion of a user.
type scramAlteration struct {
	mech    *auth.Mechanism
	mechNum int8
	delete  bool
	up      kmsg.AlterUserSCRAMCredentialsRequestUpsertion
}

func handleAlterUserScramCredentials(ctx context.Context, c *conn, req kmsg.Request) (kmsg.Response, error) {
	r := req.(*kmsg.AlterUserSCRAMCredentialsRequest)
	resp := r.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)
	a := c.s.cfg.Auth
	var order []string
	byUser := make(map[string][]scramAlteration)
	add := func(user string, alt scramAlteration) {
		if _, ok := byUser[user]; !ok {
			order = append(order, user)
		}
		byUser[user] = append(byUser[user], alt)
	}
	for _, d := range r.Deletions {
		add(d.Name, scramAlteration{mech: auth.ScramMechanismByType(d.Mechanism), mechNum: d.Mechanism, delete: true})
	}
	for _, u := range r.Upsertions {
		add(u.Name, scramAlteration{mech: auth.ScramMechanismByType(u.Mechanism), mechNum: u.Mechanism, up: u})
	}
	denied := !c.allowed(ctx, acl.OpAlter, acl.Cluster())
	for _, user := range order {
		res := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
		res.User = user
		code, msg := kerr.ClusterAuthorizationFailed.Code, *clusterDeniedMsg(acl.OpAlter)
		if !denied {
			code, msg = alterUser(ctx, a, user, byUser[user])
		}
		if code != 0 {
			res.ErrorCode, res.ErrorMessage = code, &msg
		}
		resp.Results = append(resp.Results, res)
	}
	return resp, nil
}

// alterUser checks then applies one user's alterations.
func alterUser(ctx context.Context, a *auth.Authenticator, user string, alts []scramAlteration) (int16, string) {
	if a == nil {
		return kerr.UnsupportedVersion.Code, "users are not managed by this listener"
	}
	if user == "" {
		return kerr.UnacceptableCredential.Code, "Username must not be empty"
	}
	if err := auth.CheckUserName(user); err != nil {
		return kerr.UnacceptableCredential.Code, err.Error()
	}
	seen := make(map[int8]bool)
	for _, alt := range alts {
		if seen[alt.mechNum] {
			return kerr.DuplicateResource.Code, "A user credential cannot be altered twice in the same request"
		}
		seen[alt.mechNum] = true
	}
	for _, alt := range alts {
		if alt.mech == nil {
			return kerr.UnsupportedSaslMechanism.Code, fmt.Sprintf("Unknown SCRAM mechanism %d", alt.mechNum)
		}
		if alt.delete {
			continue
		}
		switch it := alt.up.Iterations; {
		case it < auth.MinIterations:
			return kerr.UnacceptableCredential.Code, fmt.Sprintf("Too few iterations: %d (at least %d)", it, auth.MinIterations)
		case it > auth.MaxIterations:
			return kerr.UnacceptableCredential.Code, fmt.Sprintf("Too many iterations: %d (at most %d)", it, auth.MaxIterations)
		case len(alt.up.Salt) == 0 || len(alt.up.SaltedPassword) == 0:
			return kerr.UnacceptableCredential.Code, "Salt and salted password must not be empty"
		}
	}
	info, err := a.User(ctx, user)
	if err != nil && !errors.Is(err, auth.ErrUserNotFound) {
		return errorCode(err), err.Error()
	}
	for _, alt := range alts {
		if alt.delete && !hasMechanism(info, alt.mech.Name) {
			return kerr.ResourceNotFound.Code, "Attempt to delete a user credential that does not exist"
		}
	}
	// Upserts first, then deletions: a user whose credential moves from
	// one mechanism to the other always has one (Kafka writes a user's
	// alterations as one batch of records; the store takes them one at
	// a time), so a stream's user lookup never finds it deleted.
	for _, del := range []bool{false, true} {
		for _, alt := range alts {
			if alt.delete != del {
				continue
			}
			if del {
				err = a.DeleteCredential(ctx, user, alt.mech)
			} else {
				err = a.PutSaltedCredential(ctx, user, alt.mech, alt.up.Salt, alt.up.SaltedPassword, alt.up.Iterations)
			}
			if err != nil {
				return errorCode(err), err.Error()
			}
		}
	}
	return 0, ""
}

func hasMechanism(u auth.UserInfo, mech string) bool {
	for _, c := range u.Credentials {
		if c.Mechanism == mech {
			return true
		}
	}
	return false
}
