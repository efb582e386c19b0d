package config

import (
	"fmt"
	"strings"
	"unicode"
)

// Authentication settings that are lists: AUTH_BOOTSTRAP_USERS and
// SUPER_USERS, checked by Load and parsed by the methods below.

// UserPassword is one AUTH_BOOTSTRAP_USERS entry.
type UserPassword struct {
	Name     string
	Password string
}

// BootstrapUsers parses AUTH_BOOTSTRAP_USERS (already checked by Load).
func (c *Config) BootstrapUsers() []UserPassword {
	users, _ := parseBootstrapUsers(c.AuthBootstrapUsers)
	return users
}

// SuperUsers parses SUPER_USERS into user names (a "User:" prefix
// dropped).
func (c *Config) SuperUsers() []string {
	names, _ := parseSuperUsers(c.SuperUsersList)
	return names
}

// checkUserName accepts what auth.CheckUserName accepts, less ',' (the
// list separator): up to 256 bytes without control characters or ':'.
func checkUserName(s string) string {
	switch {
	case s == "":
		return "an empty user name"
	case len(s) > 256:
		return "a user name longer than 256 bytes"
	case strings.ContainsFunc(s, unicode.IsControl):
		return "a user name with a control character"
	case strings.ContainsAny(s, ":,"):
		return "a user name with ':' or ','"
	}
	return ""
}

// parseBootstrapUsers never quotes a password in what it returns.
func parseBootstrapUsers(s string) ([]UserPassword, string) {
	var out []UserPassword
	seen := map[string]bool{}
	for i, entry := range strings.Split(s, ",") {
		name, password, ok := strings.Cut(entry, ":")
		switch {
		case !ok:
			return nil, fmt.Sprintf("entry %d has no ':' between name and password", i+1)
		case password == "":
			return nil, fmt.Sprintf("entry %d has an empty password", i+1)
		}
		if problem := checkUserName(name); problem != "" {
			return nil, fmt.Sprintf("entry %d has %s", i+1, problem)
		}
		if seen[name] {
			return nil, fmt.Sprintf("user %q is listed twice", name)
		}
		seen[name] = true
		out = append(out, UserPassword{Name: name, Password: password})
	}
	return out, ""
}

func checkBootstrapUsers(s string) string {
	_, problem := parseBootstrapUsers(s)
	return problem
}

func parseSuperUsers(s string) ([]string, string) {
	var out []string
	for i, entry := range strings.Split(s, ",") {
		name := strings.TrimSpace(entry)
		name = strings.TrimPrefix(name, "User:")
		if problem := checkUserName(name); problem != "" {
			return nil, fmt.Sprintf("entry %d is %s", i+1, problem)
		}
		out = append(out, name)
	}
	return out, ""
}

func checkSuperUsers(s string) string {
	_, problem := parseSuperUsers(s)
	return problem
}
