// Package compat holds the Kafka client compatibility tests: real clients
// other than franz-go (kcat and confluent-kafka-python, both librdkafka;
// IBM/sarama; KafkaJS) against the real streamhouse binary, on every
// storage backend. The package has no code of its own;
// scripts/install-test-tools.sh installs kcat, confluent-kafka and KafkaJS.
package compat
