package grpcapi

// Streams stay authorized while they run (authz.Guard): Subscribe is
// re-checked when the ACLs change, ends when its user is deleted or its
// login's AUTH_SESSION_LIFETIME_MS passes, counted from the call's start
// (a Basic login; a client certificate does not expire, an agent token
// is checked as its own mechanism). authenticate records the login
// (auth.Login) with the mechanism it checked.
