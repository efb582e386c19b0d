package compat

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/streamhouse/streamhouse/internal/e2e"
)

func configValue(entries []sarama.ConfigEntry, name string) (string, bool) {
	for _, e := range entries {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

// TestSaramaAdmin walks a topic through sarama's ClusterAdmin: create with
// configs, list, describe and alter configs, add partitions, delete
// records, delete.
func TestSaramaAdmin(t *testing.T) {
	t.Parallel()
	for _, be := range e2e.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, be)
			client := saramaClient(t, s.KafkaAddr, nil)
			admin, err := sarama.NewClusterAdminFromClient(client)
			if err != nil {
				t.Fatal(err)
			}
			const topic = "sarama-admin"
			retention, cleanup := "3600000", "delete"

			brokers, controller, err := admin.DescribeCluster()
			if err != nil {
				t.Fatalf("DescribeCluster: %v", err)
			}
			var addrs []string
			for _, b := range brokers {
				addrs = append(addrs, fmt.Sprintf("%d@%s", b.ID(), b.Addr()))
			}
			if len(brokers) != 1 || brokers[0].Addr() != s.KafkaAddr || brokers[0].ID() != controller {
				t.Errorf("DescribeCluster: brokers %v, controller %d; want one at %s that is the controller", addrs, controller, s.KafkaAddr)
			}

			detail := &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1,
				ConfigEntries: map[string]*string{"retention.ms": &retention, "cleanup.policy": &cleanup}}
			if err := admin.CreateTopic(topic, detail, true); err != nil {
				t.Fatalf("CreateTopic validate only: %v", err)
			}
			if md, err := admin.DescribeTopics([]string{topic}); err != nil || len(md) != 1 || !errors.Is(md[0].Err, sarama.ErrUnknownTopicOrPartition) {
				t.Fatalf("after a validate-only CreateTopic: %+v, %v; want unknown topic", md, err)
			}
			if err := admin.CreateTopic(topic, detail, false); err != nil {
				t.Fatalf("CreateTopic: %v", err)
			}
			if err := admin.CreateTopic(topic, detail, false); !errors.Is(err, sarama.ErrTopicAlreadyExists) {
				t.Errorf("CreateTopic again: %v, want %v", err, sarama.ErrTopicAlreadyExists)
			}

			topics, err := admin.ListTopics()
			if err != nil {
				t.Fatalf("ListTopics: %v", err)
			}
			d, ok := topics[topic]
			if !ok {
				t.Fatalf("ListTopics: %s missing from %v", topic, topics)
			}
			if d.NumPartitions != 2 || d.ReplicationFactor != 1 {
				t.Errorf("ListTopics %s: %d partitions replication %d, want 2 and 1", topic, d.NumPartitions, d.ReplicationFactor)
			}
			if v := d.ConfigEntries["retention.ms"]; v == nil || *v != retention {
				t.Errorf("ListTopics %s: retention.ms %v, want %s", topic, v, retention)
			}

			resource := sarama.ConfigResource{Type: sarama.TopicResource, Name: topic}
			entries, err := admin.DescribeConfig(resource)
			if err != nil {
				t.Fatalf("DescribeConfig: %v", err)
			}
			for name, want := range map[string]string{"retention.ms": retention, "cleanup.policy": cleanup} {
				if v, ok := configValue(entries, name); !ok || v != want {
					t.Errorf("DescribeConfig %s = %q (present %v), want %q", name, v, ok, want)
				}
			}

			newRetention := "7200000"
			if err := admin.AlterConfig(sarama.TopicResource, topic, map[string]*string{"retention.ms": &newRetention}, false); err != nil {
				t.Fatalf("AlterConfig: %v", err)
			}
			maxBytes := "2097152"
			if err := admin.IncrementalAlterConfig(sarama.TopicResource, topic, map[string]sarama.IncrementalAlterConfigsEntry{
				"max.message.bytes": {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: &maxBytes}}, false); err != nil {
				t.Fatalf("IncrementalAlterConfig: %v", err)
			}
			entries, err = admin.DescribeConfig(resource)
			if err != nil {
				t.Fatalf("DescribeConfig: %v", err)
			}
			for name, want := range map[string]string{"retention.ms": newRetention, "max.message.bytes": maxBytes} {
				if v, ok := configValue(entries, name); !ok || v != want {
					t.Errorf("DescribeConfig after alter: %s = %q (present %v), want %q", name, v, ok, want)
				}
			}

			if err := admin.CreatePartitions(topic, 4, nil, false); err != nil {
				t.Fatalf("CreatePartitions: %v", err)
			}
			if err := admin.CreatePartitions(topic, 3, nil, false); !errors.Is(err, sarama.ErrInvalidPartitions) {
				t.Errorf("CreatePartitions down to 3: %v, want %v", err, sarama.ErrInvalidPartitions)
			}
			md, err := admin.DescribeTopics([]string{topic})
			if err != nil || len(md) != 1 || md[0].Err != sarama.ErrNoError {
				t.Fatalf("DescribeTopics: %+v, %v", md, err)
			}
			var parts []int32
			for _, p := range md[0].Partitions {
				parts = append(parts, p.ID)
			}
			slices.Sort(parts)
			if !slices.Equal(parts, []int32{0, 1, 2, 3}) {
				t.Errorf("partitions after CreatePartitions: %v, want [0 1 2 3]", parts)
			}

			// Records in the new partition 3, then delete the first four.
			prod, err := sarama.NewSyncProducerFromClient(client)
			if err != nil {
				t.Fatal(err)
			}
			defer prod.Close()
			var msgs []*sarama.ProducerMessage
			for i := range 10 {
				msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: 3, Value: sarama.StringEncoder(fmt.Sprint(i))})
			}
			if err := client.RefreshMetadata(topic); err != nil {
				t.Fatal(err)
			}
			if err := prod.SendMessages(msgs); err != nil {
				t.Fatalf("produce to the new partition: %v", err)
			}
			if err := admin.DeleteRecords(topic, map[int32]int64{3: 4}); err != nil {
				t.Fatalf("DeleteRecords: %v", err)
			}
			if low, err := client.GetOffset(topic, 3, sarama.OffsetOldest); err != nil || low != 4 {
				t.Errorf("log start offset after DeleteRecords: %d, %v; want 4", low, err)
			}
			got := consumePartition(t, client, topic, 3, sarama.OffsetOldest, 6, 30*time.Second)
			if got[0].Offset != 4 || string(got[0].Value) != "4" {
				t.Errorf("first record after DeleteRecords: offset %d value %q, want 4 and \"4\"", got[0].Offset, got[0].Value)
			}

			if err := admin.DeleteTopic(topic); err != nil {
				t.Fatalf("DeleteTopic: %v", err)
			}
			eventually(t, 30*time.Second, "topic gone", func() error {
				topics, err := admin.ListTopics()
				if err != nil {
					return err
				}
				if _, ok := topics[topic]; ok {
					return fmt.Errorf("%s still listed", topic)
				}
				return nil
			})
			if err := admin.DeleteTopic(topic); !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
				t.Errorf("DeleteTopic again: %v, want %v", err, sarama.ErrUnknownTopicOrPartition)
			}
		})
	}
}
