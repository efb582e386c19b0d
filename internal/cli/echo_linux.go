//go:build linux

package cli

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// echoOff turns the terminal's echo off and returns what turns it back
// on. The password prompt is printed only after this, so a password typed
// as soon as the prompt shows is never echoed (term.ReadPassword alone
// turns echo off after the prompt is already on the screen).
func echoOff(fd int) (restore func(), err error) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, fmt.Errorf("read terminal settings: %w", err)
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return nil, fmt.Errorf("turn terminal echo off: %w", err)
	}
	return func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}
