package kafka

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestFetchSessionOwnership checks that a fetch session belongs to the
// connection that created it: another connection naming its ID can neither
// use, close nor replace it, and the session ends with its connection.
// Session IDs are random, not a counter another client could guess.
func TestFetchSessionOwnership(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	top := s.dpTopic(t, "owned", 1, nil)
	fetch := func(w *dpWire, id, epoch int32, withPartition bool) *kmsg.FetchResponse {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.Version = 13
		req.MaxBytes, req.MinBytes, req.MaxWaitMillis = 1<<20, 1, 0
		req.SessionID, req.SessionEpoch = id, epoch
		if withPartition {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = 0, 0, 1<<20
			req.Topics = []kmsg.FetchRequestTopic{{TopicID: top.ID, Partitions: []kmsg.FetchRequestTopicPartition{rp}}}
		}
		return w.do(req).(*kmsg.FetchResponse)
	}

	owner, other := s.dpDial(t), s.dpDial(t)
	full := fetch(owner, 0, 0, true)
	id := full.SessionID
	if full.ErrorCode != 0 || id == 0 {
		t.Fatalf("full fetch: error %d, session %d", full.ErrorCode, id)
	}
	// Another connection cannot fetch in the session (which would also
	// advance its epoch) ...
	if resp := fetch(other, id, 1, false); resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("incremental fetch from another connection: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	// ... nor close it (epoch -1) or replace it (epoch 0).
	if resp := fetch(other, id, -1, true); resp.ErrorCode != 0 || resp.SessionID != 0 {
		t.Fatalf("closing fetch from another connection: error %d, session %d", resp.ErrorCode, resp.SessionID)
	}
	stolen := fetch(other, id, 0, true)
	if stolen.ErrorCode != 0 || stolen.SessionID == 0 || stolen.SessionID == id {
		t.Fatalf("new-session fetch from another connection: error %d, session %d (owner's %d)", stolen.ErrorCode, stolen.SessionID, id)
	}
	// The owner's session is untouched: epoch 1 is still the next.
	if resp := fetch(owner, id, 1, false); resp.ErrorCode != 0 || resp.SessionID != id {
		t.Fatalf("owner's incremental fetch: error %v, session %d", kerr.ErrorForCode(resp.ErrorCode), resp.SessionID)
	}
	// The other connection's own session is not the owner's to use.
	if resp := fetch(owner, stolen.SessionID, 1, false); resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("owner using the other connection's session: %v", kerr.ErrorForCode(resp.ErrorCode))
	}

	// IDs are random: of several sessions, not all follow each other.
	ids := []int32{id, stolen.SessionID}
	for range 4 {
		w := s.dpDial(t)
		ids = append(ids, fetch(w, 0, 0, true).SessionID)
	}
	sequential := true
	for i := 1; i < len(ids); i++ {
		if ids[i] == 0 || ids[i] < 0 {
			t.Fatalf("session ids %v", ids)
		}
		sequential = sequential && (ids[i]-ids[i-1] == 1 || ids[i-1]-ids[i] == 1)
	}
	if sequential {
		t.Fatalf("session ids %v follow each other", ids)
	}

	// Sessions die with their connection.
	before := s.srv.sessions.len()
	_ = owner.nc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for s.srv.sessions.len() != before-1 {
		if time.Now().After(deadline) {
			t.Fatalf("sessions: %d before closing the owner, %d after", before, s.srv.sessions.len())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if resp := fetch(s.dpDial(t), id, 2, false); resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("session of a closed connection: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
}
