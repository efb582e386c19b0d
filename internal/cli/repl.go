package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/peterh/liner"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

const replPrompt = "streamctl> "

// runREPL reads commands until exit, end of input or ctx's end:
// interactively when stdin and stdout are the process's terminal,
// otherwise line by line from stdin.
func (s *session) runREPL(ctx context.Context) int {
	in, inOK := s.stdin.(*os.File)
	out, outOK := s.stdout.(*os.File)
	if inOK && outOK && in == os.Stdin && out == os.Stdout && isTerminal(in) && isTerminal(out) {
		return s.interactive(ctx)
	}
	return s.piped(ctx)
}

// isTerminal reports whether v is a file that is a terminal.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// runLine runs one REPL line: its exit status, and whether it was exit.
func (s *session) runLine(ctx context.Context, line string) (code int, exit bool) {
	if s.sql.on {
		return s.sqlLine(ctx, line), false
	}
	words, err := splitLine(line)
	if err != nil {
		fmt.Fprintf(s.stderr, "streamctl: %v\n", err)
		return ExitUsage, false
	}
	if len(words) == 0 {
		return ExitOK, false
	}
	if s.enterSQL(words) {
		fmt.Fprintln(s.stdout, `SQL mode: end statements with ";"; exit, quit or \q goes back to commands.`)
		return ExitOK, false
	}
	res := s.execute(ctx, words)
	return res.code, res.exit
}

// piped runs the commands of stdin, one per line; blank lines and lines
// starting with # are skipped. A failing command does not stop the
// session; the exit status is that of the first command that failed. An
// interrupt while a command runs cancels it; one while waiting for input
// ends the session.
func (s *session) piped(ctx context.Context) int {
	lines := make(chan string)
	readErr := make(chan error, 1)
	done := make(chan struct{})
	defer close(done)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(s.stdin)
		sc.Buffer(make([]byte, 64<<10), maxLineBytes)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-done:
				return
			}
		}
		readErr <- sc.Err()
	}()
	status := ExitOK
	for {
		var line string
		select {
		case l, ok := <-lines:
			if !ok {
				if err := <-readErr; err != nil {
					fmt.Fprintf(s.stderr, "streamctl: read commands: %v\n", err)
					return ExitError
				}
				if s.sql.on && s.sql.buf.Len() > 0 {
					fmt.Fprintf(s.stderr, "streamctl: unfinished SQL statement (no ';') not run: %s\n", s.sql.buf.String())
					if status == ExitOK {
						status = ExitUsage
					}
				}
				return status
			}
			line = l
		case <-s.interrupts:
			return ExitInterrupted
		case <-ctx.Done():
			return status
		}
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		code, exit := s.runLine(ctx, line)
		if code != ExitOK && status == ExitOK {
			status = code
		}
		if exit || ctx.Err() != nil {
			return status
		}
	}
}

// interactive is the REPL on a terminal, with line editing, history kept
// across runs, and tab completion of commands, flags and names. Ctrl+C at
// the prompt clears the line; during a command it cancels the command
// (the terminal sends SIGINT, which arrives through WithInterrupts).
func (s *session) interactive(ctx context.Context) int {
	ln := liner.NewLiner()
	defer ln.Close()
	ln.SetCtrlCAborts(true)
	ln.SetTabCompletionStyle(liner.TabPrints)
	ln.SetWordCompleter(func(line string, pos int) (string, []string, string) {
		if s.sql.on {
			return s.completeSQL(ctx, line, pos)
		}
		return s.complete(ctx, line, pos)
	})
	hist := s.historyPath()
	loadHistory(ln, hist)
	fmt.Fprintf(s.stdout, "streamctl: StreamHouse at %s. Type help for commands (without the streamctl prefix), exit or Ctrl+D to leave.\n", s.defaults.apiURL)
	s.warnUnreachable(ctx)
	warned := false
	histSQL := false // which history ln holds
	for {
		if s.sql.on != histSQL {
			// SQL statements and commands keep separate histories.
			histSQL = s.sql.on
			ln.ClearHistory()
			hist = s.historyPath()
			loadHistory(ln, hist)
		}
		inSQL := s.sql.on
		line, err := ln.Prompt(s.prompt())
		switch {
		case errors.Is(err, liner.ErrPromptAborted):
			s.sql.buf.Reset()
			continue
		case errors.Is(err, io.EOF) && inSQL:
			fmt.Fprintln(s.stdout)
			s.leaveSQL()
			continue
		case errors.Is(err, io.EOF):
			fmt.Fprintln(s.stdout)
			return ExitOK
		case err != nil:
			fmt.Fprintf(s.stderr, "streamctl: %v\n", err)
			return ExitError
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		ln.AppendHistory(strings.TrimSpace(line))
		if hist != "" {
			if err := saveHistory(ln, hist); err != nil && !warned {
				warned = true
				fmt.Fprintf(s.stderr, "streamctl: history not saved: %v\n", err)
			}
		}
		if _, exit := s.runLine(ctx, line); exit || ctx.Err() != nil {
			return ExitOK
		}
	}
}

// loadHistory reads the history file at path (if any) into ln.
func loadHistory(ln *liner.State, path string) {
	if path == "" {
		return
	}
	if f, err := os.Open(path); err == nil {
		_, _ = ln.ReadHistory(f)
		f.Close()
	}
}

// warnUnreachable says at the start of a session when the server does not
// answer, so that the first command's failure is no surprise.
func (s *session) warnUnreachable(ctx context.Context) {
	c := &client{hc: s.httpClient(s.defaults), api: s.defaults.apiURL, user: s.defaults.user, password: s.defaults.password}
	if _, err := c.do(ctx, request{method: http.MethodGet, base: c.api, path: "/health", timeout: 2 * time.Second}); err != nil {
		fmt.Fprintf(s.stderr, "streamctl: warning: %v\n", err)
	}
}

// historyPath is $XDG_STATE_HOME/streamctl/history, else
// ~/.streamctl_history ("sql_history" and ~/.streamctl_sql_history in SQL
// mode); "" when neither is known.
func (s *session) historyPath() string {
	name, dot := "history", ".streamctl_history"
	if s.sql.on {
		name, dot = "sql_history", ".streamctl_sql_history"
	}
	if d := s.getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "streamctl", name)
	}
	if h := s.getenv("HOME"); h != "" {
		return filepath.Join(h, dot)
	}
	return ""
}

// saveHistory writes the history (private: values may be sensitive),
// replacing the file whole.
func saveHistory(ln *liner.State, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp" + strconv.Itoa(os.Getpid())
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := ln.WriteHistory(f); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// complete is the REPL's tab completion: it asks the command tree, as
// the shell completion scripts do (cobra's __complete), for the word
// before the cursor, and falls back to file names where a file is
// expected.
func (s *session) complete(ctx context.Context, line string, pos int) (head string, completions []string, tail string) {
	runes := []rune(line)
	pos = max(0, min(pos, len(runes)))
	before, tail := string(runes[:pos]), string(runes[pos:])
	words := splitPartial(before)
	last := words[len(words)-1]
	head = before[:last.start]

	args := []string{cobra.ShellCompNoDescRequestCmd}
	for _, w := range words {
		args = append(args, w.text)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	root, _ := s.newRoot()
	var out bytes.Buffer
	root.SetArgs(args)
	root.SetIn(strings.NewReader(""))
	root.SetOut(&out)
	root.SetErr(io.Discard)
	_ = root.ExecuteContext(ctx)
	cands, directive := parseCompletions(out.String())
	if directive&cobra.ShellCompDirectiveError != 0 {
		return head, nil, tail
	}
	noSpace := directive&cobra.ShellCompDirectiveNoSpace != 0
	if len(cands) == 0 && directive&(cobra.ShellCompDirectiveNoFileComp|cobra.ShellCompDirectiveFilterFileExt|cobra.ShellCompDirectiveFilterDirs) == 0 {
		cands, noSpace = completeFiles(last.text)
	}
	for _, c := range cands {
		w := quoteWord(c)
		if len(cands) == 1 && !noSpace {
			w += " "
		}
		completions = append(completions, w)
	}
	return head, completions, tail
}

// parseCompletions reads __complete's output: one candidate per line
// (a tab starts its description), then ":directive".
func parseCompletions(out string) (cands []string, directive cobra.ShellCompDirective) {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if d, ok := strings.CutPrefix(lines[i], ":"); ok {
			if n, err := strconv.Atoi(d); err == nil {
				directive = cobra.ShellCompDirective(n)
			}
			lines = lines[:i]
			break
		}
	}
	for _, l := range lines {
		if c, _, _ := strings.Cut(l, "\t"); c != "" {
			cands = append(cands, c)
		}
	}
	return cands, directive
}

// completeFiles lists the files starting with prefix; a single directory
// completes without a trailing space so the next Tab descends into it.
func completeFiles(prefix string) (cands []string, noSpace bool) {
	matches, _ := filepath.Glob(globEscape(prefix) + "*")
	for _, m := range matches {
		if st, err := os.Stat(m); err == nil && st.IsDir() {
			m += string(filepath.Separator)
			noSpace = len(matches) == 1
		}
		cands = append(cands, m)
	}
	return cands, noSpace
}

// globEscape makes s match itself in filepath.Glob.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
