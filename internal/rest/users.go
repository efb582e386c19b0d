package rest

import (
	"errors"
	"net/http"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/auth"
	"github.com/streamhouse/streamhouse/internal/authz"
)

// Users (docs/security.md): the SCRAM users that log in to every listener,
// for streamctl user create|list|delete and the console.
//
//	GET    /api/v1/users               {"users":[{"name","credentials":[{"mechanism","iterations"}]}]}
//	POST   /api/v1/users               {"name","password","mechanism"?} → 201 (new user) or 200 (password set)
//	DELETE /api/v1/users/{name}        204; ?mechanism= removes one credential only
//
// POST sets the password of the named mechanism, or of both SCRAM
// mechanisms when none is named (so that every mechanism, PLAIN and HTTP
// Basic included, works), with AUTH_SCRAM_ITERATIONS. Passwords never
// come back. Bad names or passwords are 400, an unknown user 404.

type userJSON struct {
	Name        string           `json:"name"`
	Credentials []credentialJSON `json:"credentials"`
}

type credentialJSON struct {
	Mechanism  string `json:"mechanism"`
	Iterations int32  `json:"iterations"`
}

func userAnswer(u auth.UserInfo) userJSON {
	out := userJSON{Name: u.Name, Credentials: []credentialJSON{}}
	for _, c := range u.Credentials {
		out.Credentials = append(out.Credentials, credentialJSON{Mechanism: c.Mechanism, Iterations: c.Iterations})
	}
	return out
}

// userError maps the user API's errors to answers.
func userError(err error) error {
	switch {
	case errors.Is(err, auth.ErrInvalidUser):
		return badRequest("%s", err.Error())
	case errors.Is(err, auth.ErrUserNotFound):
		return notFound("%s", err.Error())
	}
	return err
}

func (s *server) listUsers(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorize(r, authz.Need(acl.OpDescribe, acl.Cluster())); err != nil {
		return err
	}
	users, err := s.users.Users(r.Context())
	if err != nil {
		return err
	}
	out := struct {
		Users []userJSON `json:"users"`
	}{Users: []userJSON{}}
	for _, u := range users {
		out.Users = append(out.Users, userAnswer(u))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) setUser(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorize(r, authz.Need(acl.OpAlter, acl.Cluster())); err != nil {
		return err
	}
	var req struct {
		Name      *string `json:"name"`
		Password  *string `json:"password"`
		Mechanism string  `json:"mechanism"`
	}
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	if req.Name == nil || req.Password == nil {
		return badRequest("name and password are required")
	}
	var mechs []*auth.Mechanism
	if req.Mechanism != "" {
		m := auth.ScramMechanism(req.Mechanism)
		if m == nil {
			return badRequest("mechanism must be %s or %s", auth.MechanismScramSHA256, auth.MechanismScramSHA512)
		}
		mechs = []*auth.Mechanism{m}
	}
	created, err := s.users.SetPassword(r.Context(), *req.Name, *req.Password, mechs)
	if err != nil {
		return userError(err)
	}
	u, err := s.users.User(r.Context(), *req.Name)
	if err != nil {
		return userError(err)
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, userAnswer(u))
	return nil
}

func (s *server) deleteUser(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorize(r, authz.Need(acl.OpAlter, acl.Cluster())); err != nil {
		return err
	}
	name := r.PathValue("name")
	var err error
	if mech := r.URL.Query().Get("mechanism"); mech != "" {
		m := auth.ScramMechanism(mech)
		if m == nil {
			return badRequest("mechanism must be %s or %s", auth.MechanismScramSHA256, auth.MechanismScramSHA512)
		}
		err = s.users.DeleteCredential(r.Context(), name, m)
	} else {
		err = s.users.DeleteUser(r.Context(), name)
	}
	if err != nil {
		return userError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
