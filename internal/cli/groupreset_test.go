package cli

import (
	"slices"
	"testing"
)

// The original streamctl's -s/-o of consumer reset become --strategy and
// --offset after the command path, and nowhere else.
func TestOriginalConsumerFlags(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want []string }{
		{[]string{"consumer", "reset", "g", "-s", "specific", "-o", "5"}, []string{"consumer", "reset", "g", "--strategy", "specific", "--offset", "5"}},
		{[]string{"-s", "h:1", "-o", "json", "consumer", "reset", "g", "-s", "latest"}, []string{"-s", "h:1", "-o", "json", "consumer", "reset", "g", "--strategy", "latest"}},
		{[]string{"--output=json", "consumer", "reset", "-slatest", "g", "-o7", "-s=earliest", "-o=2"}, []string{"--output=json", "consumer", "reset", "--strategy=latest", "g", "--offset=7", "--strategy=earliest", "--offset=2"}},
		{[]string{"consumer", "reset", "g", "--", "-s"}, []string{"consumer", "reset", "g", "--", "-s"}},
		{[]string{"consumer", "seek", "g", "-s", "x"}, []string{"consumer", "seek", "g", "-s", "x"}},
		{[]string{"-o", "consumer", "reset", "-s", "x"}, []string{"-o", "consumer", "reset", "-s", "x"}}, // "consumer" is -o's value
		{[]string{"topic", "list", "-o", "json"}, []string{"topic", "list", "-o", "json"}},
		{[]string{"consumer"}, []string{"consumer"}},
		{nil, nil},
	} {
		if got := originalConsumerFlags(c.in); !slices.Equal(got, c.want) {
			t.Errorf("originalConsumerFlags(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestParseTime(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{
		"0":                         0,
		"1700000000123":             1700000000123,
		"2026-01-15T10:00:00Z":      1768471200000,
		"2026-01-15T10:00:00.5Z":    1768471200500,
		"2026-01-15T11:00:00+01:00": 1768471200000,
		"2026-01-15T10:00:00":       1768471200000,
		"2026-01-15":                1768435200000,
	} {
		if got, err := parseTime(in); err != nil || got != want {
			t.Errorf("parseTime(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "yesterday", "2026-13-01T00:00:00Z"} {
		if _, err := parseTime(in); err == nil {
			t.Errorf("parseTime(%q) passed", in)
		}
	}
}
