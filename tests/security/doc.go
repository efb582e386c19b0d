// Package security holds the end-to-end tests of StreamHouse's security
// settings (docs/security.md) against the real streamhouse binary: TLS and
// mutual TLS on the Kafka, HTTP and gRPC listeners, certificate reload, and
// start-up errors for bad certificate files. The package has no code of
// its own; the certificates are made at test time (internal/testutil/testcerts).
package security
