package kafka

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/auth"
)

// DescribeUserScramCredentials, key 50.
//
// Version 0 (flexible). Lists users' SCRAM credentials (mechanism and
// iterations, never salts or keys): every user when the request names
// none, else the named ones, in request order. Kafka's errors per user:
// RESOURCE_NOT_FOUND for a user without credentials, DUPLICATE_RESOURCE
// for a user named twice. The agents' own users (internal/auth) are not
// shown. A store that does not answer is the top-level error
// (COORDINATOR_NOT_AVAILABLE, retriable).

func init() { register(50, 0, 0, handleDescribeUserScramCredentials) }

func credentialInfos(u auth.UserInfo) []kmsg.DescribeUserSCRAMCredentialsResponseResultCredentialInfo {
	var out []kmsg.DescribeUserSCRAMCredentialsResponseResultCredentialInfo
	for _, c := range u.Credentials {
		ci := kmsg.NewDescribeUserSCRAMCredentialsResponseResultCredentialInfo()
		ci.Mechanism, ci.Iterations = auth.ScramMechanism(c.Mechanism).KafkaType, c.Iterations
		out = append(out, ci)
	}
	return out
}

func handleDescribeUserScramCredentials(ctx context.Context, c *conn, req kmsg.Request) (kmsg.Response, error) {
	r := req.(*kmsg.DescribeUserSCRAMCredentialsRequest)
	resp := r.ResponseKind().(*kmsg.DescribeUserSCRAMCredentialsResponse)
	a := c.s.cfg.Auth
	fail := func(err error) (kmsg.Response, error) {
		msg := err.Error()
		resp.ErrorCode, resp.ErrorMessage = errorCode(err), &msg
		resp.Results = nil
		return resp, nil
	}
	if a == nil {
		return fail(kerr.UnsupportedVersion) // not wired (in-process tests without users)
	}
	if !c.allowed(ctx, acl.OpDescribe, acl.Cluster()) {
		resp.ErrorCode, resp.ErrorMessage = kerr.ClusterAuthorizationFailed.Code, clusterDeniedMsg(acl.OpDescribe)
		return resp, nil
	}
	if len(r.Users) == 0 {
		users, err := a.Users(ctx)
		if err != nil {
			return fail(err)
		}
		for _, u := range users {
			res := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
			res.User, res.CredentialInfos = u.Name, credentialInfos(u)
			resp.Results = append(resp.Results, res)
		}
		return resp, nil
	}
	seen := make(map[string]int, len(r.Users))
	for _, u := range r.Users {
		seen[u.Name]++
	}
	described := make(map[string]bool, len(r.Users))
	for _, ru := range r.Users {
		if described[ru.Name] {
			continue
		}
		described[ru.Name] = true
		res := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
		res.User = ru.Name
		if seen[ru.Name] > 1 {
			msg := "Cannot describe SCRAM credentials for the same user twice in a single request: " + ru.Name
			res.ErrorCode, res.ErrorMessage = kerr.DuplicateResource.Code, &msg
			resp.Results = append(resp.Results, res)
			continue
		}
		u, err := a.User(ctx, ru.Name)
		switch {
		case errors.Is(err, auth.ErrUserNotFound):
			msg := "Attempt to describe a user credential that does not exist: " + ru.Name
			res.ErrorCode, res.ErrorMessage = kerr.ResourceNotFound.Code, &msg
		case err != nil:
			return fail(err)
		default:
			res.CredentialInfos = credentialInfos(u)
		}
		resp.Results = append(resp.Results, res)
	}
	return resp, nil
}
