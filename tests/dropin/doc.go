// Package dropin tests StreamHouse the way a user of the original
// StreamHouse would use it: with the original's REST calls, field names,
// CLI flags and settings, against the real server binary (issue 14).
package dropin
