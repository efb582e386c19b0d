//go:build !linux

package cli

// echoOff has nothing to do here: term.ReadPassword turns echo off itself.
func echoOff(int) (func(), error) { return func() {}, nil }
