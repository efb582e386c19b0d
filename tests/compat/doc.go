// Package compat holds the Kafka client compatibility tests: real clients
// other than franz-go (kcat/librdkafka, IBM/sarama, KafkaJS) against the
// real streamhouse binary, on every storage backend. The package has no
// code of its own; scripts/install-test-tools.sh installs kcat and KafkaJS.
package compat
