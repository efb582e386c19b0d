package config

import (
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Setting is one variable's effective value, for the start-up log.
type Setting struct {
	Name   string
	Value  string // "" for an unset optional variable; secrets redacted
	Source string // "env" or "default"
}

// Sources of a Setting.
const (
	SourceEnv     = "env"
	SourceDefault = "default"
)

// redacted replaces secrets in Settings, LogValue and errors.
const redacted = "[REDACTED]"

// Settings lists every variable with its effective value, in the order of
// the table in vars.go, with secrets redacted.
func (c *Config) Settings() []Setting {
	out := make([]Setting, 0, len(vars))
	for i := range vars {
		v := &vars[i]
		s := Setting{Name: v.name, Source: SourceDefault}
		raw, set := c.env[v.name]
		if set {
			s.Source = SourceEnv
		}
		if v.kind == kindPresence {
			s.Value = raw
		} else {
			s.Value = v.redact(v.format(c))
		}
		out = append(out, s)
	}
	return out
}

// LogValue makes a *Config safe and readable in slog: the chosen backends,
// every setting (secrets redacted) and the names set in the environment.
func (c *Config) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("storage", c.Storage),
		slog.String("metadata", c.Metadata),
	}
	var fromEnv []string
	for _, s := range c.Settings() {
		attrs = append(attrs, slog.String(s.Name, s.Value))
		if s.Source == SourceEnv {
			fromEnv = append(fromEnv, s.Name)
		}
	}
	attrs = append(attrs, slog.String("from_env", strings.Join(fromEnv, ",")))
	return slog.GroupValue(attrs...)
}

// NewLogger returns a logger writing to w at LOG_LEVEL in LOG_FORMAT.
func (c *Config) NewLogger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// format renders v's field as environment text: durations in the
// variable's unit, zero optional fields as "".
func (v *variable) format(c *Config) string {
	switch p := v.field(c).(type) {
	case *string:
		return *p
	case *bool:
		return strconv.FormatBool(*p)
	case *slog.Level:
		return strings.ToLower(p.String())
	case *int:
		return v.formatInt(int64(*p))
	case *int32:
		return v.formatInt(int64(*p))
	case *uint32:
		return v.formatInt(int64(*p))
	case *int64:
		return v.formatInt(*p)
	case *time.Duration:
		return v.formatInt(int64(*p / v.unit))
	default:
		panic(fmt.Sprintf("config: unsupported field %T", p))
	}
}

func (v *variable) formatInt(n int64) string {
	if n == 0 && v.def == "" && !v.dynamic {
		return "" // optional and unset
	}
	return strconv.FormatInt(n, 10)
}

// redact hides what must not reach a log: all of a secret, the passwords
// of a connection URL.
func (v *variable) redact(s string) string {
	switch {
	case s == "":
		return ""
	case v.secret:
		return redacted
	case v.dsn:
		return redactURL(s)
	}
	return s
}

// redactURL hides the password in the user info and in any query parameter
// whose name holds "password" (libpq's password, sslpassword). Text that is
// not a URL with "://" is hidden whole: it may be a key=value DSN.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || !strings.Contains(s, "://") {
		return redacted
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			if strings.Contains(strings.ToLower(k), "password") {
				q.Set(k, "xxxxx")
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// Markdown renders every variable, its default and its description as
// GitHub markdown: one bold group name and one table per group, in the
// order of Settings. The README embeds it verbatim.
func Markdown() string {
	var b strings.Builder
	group := ""
	for i := range vars {
		v := &vars[i]
		if v.group != group {
			if group != "" {
				b.WriteString("\n")
			}
			group = v.group
			fmt.Fprintf(&b, "**%s**\n\n| Variable | Default | Description |\n|---|---|---|\n", group)
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", v.name, cell(v.defaultDoc()), cell(v.help))
	}
	return b.String()
}

// defaultDoc is the Markdown default column: the doc text, or the literal
// default with a readable size for byte counts.
func (v *variable) defaultDoc() string {
	if v.doc != "" {
		return v.doc
	}
	s := "`" + v.def + "`"
	if n, err := strconv.ParseInt(v.def, 10, 64); err == nil && v.what == "bytes" && n > 0 {
		switch {
		case n%gib == 0:
			s += fmt.Sprintf(" (%d GiB)", n/gib)
		case n%mib == 0:
			s += fmt.Sprintf(" (%d MiB)", n/mib)
		}
	}
	return s
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
