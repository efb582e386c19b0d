package group

import (
	"bytes"
	"slices"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// State is a group's state in Kafka's classic protocol.
type State int8

const (
	// Empty: no members. The group may still have committed offsets.
	Empty State = iota
	// PreparingRebalance: the join barrier. Members rejoin until all have,
	// or until the longest rebalance timeout of the members passes.
	PreparingRebalance
	// CompletingRebalance: the generation is formed and the members wait
	// for the leader's assignment (SyncGroup).
	CompletingRebalance
	// Stable: the leader's assignment was handed out.
	Stable
	// Dead: the group was deleted or emptied and dropped from memory.
	Dead
)

var stateNames = [...]string{"Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead"}

// String is the state's name as Kafka's DescribeGroups and ListGroups
// report it.
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "Unknown"
}

// Protocol is one assignment protocol a member supports (for the
// "consumer" protocol type: an assignor such as "range" or
// "cooperative-sticky"), with the member's metadata for it.
type Protocol struct {
	Name     string
	Metadata []byte
}

type member struct {
	id         string
	instanceID string // group.instance.id (KIP-345); "" for dynamic members
	clientID   string
	clientHost string

	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	protocolType     string
	protocols        []Protocol // in the member's order of preference
	assignment       []byte     // the leader's assignment for this generation

	order uint64 // join order: leader succession and stable listings

	join    chan JoinResult // set while a JoinGroup waits for the barrier
	sync    chan SyncResult // set while a SyncGroup waits for the leader
	session timer
}

func (m *member) metadataFor(protocol string) []byte {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return p.Metadata
		}
	}
	return nil
}

// sameProtocols reports whether a rejoin carries exactly the protocols
// (names, order and metadata) the member has, so it changes nothing.
func (m *member) sameProtocols(ps []Protocol) bool {
	return slices.EqualFunc(m.protocols, ps, func(a, b Protocol) bool {
		return a.Name == b.Name && bytes.Equal(a.Metadata, b.Metadata)
	})
}

type group struct {
	id           string
	state        State
	protocolType string
	protocol     string // selected for the current generation
	generation   int32
	leader       string

	members map[string]*member
	static  map[string]string // instance id → member id
	// pending are member ids handed out with MEMBER_ID_REQUIRED (KIP-394)
	// whose owners have not joined with them yet; each expires after the
	// session timeout.
	pending map[string]*timer
	// pendingSync are the members of a new generation that have not sent
	// SyncGroup yet; they are removed if they do not within the rebalance
	// timeout.
	pendingSync map[string]struct{}

	joinTimer timer // join barrier, or the initial rebalance delay
	syncTimer timer // pending sync

	// The initial rebalance delay (group.initial.rebalance.delay.ms) of a
	// group leaving Empty: the barrier waits it out, extending it while
	// members keep arriving, up to the rebalance timeout.
	initialDelay   bool
	newMemberAdded bool
	delayRemaining time.Duration

	// fence is the coordinator slot lease the group was loaded (or
	// created) under; every write for the group is made under it.
	fence metadata.GroupFence
	// saving counts saves of the group's state in flight (persist.go).
	saving int
}

func newGroup(id string) *group {
	return &group{
		id:          id,
		members:     make(map[string]*member),
		static:      make(map[string]string),
		pending:     make(map[string]*timer),
		pendingSync: make(map[string]struct{}),
	}
}

// sortedMembers lists members in join order.
func (g *group) sortedMembers() []*member {
	ms := make([]*member, 0, len(g.members))
	for _, m := range g.members {
		ms = append(ms, m)
	}
	slices.SortFunc(ms, func(a, b *member) int {
		switch {
		case a.order < b.order:
			return -1
		case a.order > b.order:
			return 1
		}
		return 0
	})
	return ms
}

// rebalanceTimeout bounds the join barrier and the wait for SyncGroups:
// the longest rebalance timeout any member asked for.
func (g *group) rebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range g.members {
		d = max(d, m.rebalanceTimeout)
	}
	return d
}

// allJoined reports whether the join barrier can complete: every member
// has rejoined and no member id handed out is still unused.
func (g *group) allJoined() bool {
	if len(g.pending) > 0 {
		return false
	}
	for _, m := range g.members {
		if m.join == nil {
			return false
		}
	}
	return true
}

// supportsProtocols is Kafka's check that a joining member can be part of
// the group: the same protocol type, and at least one protocol every
// current member supports.
func (g *group) supportsProtocols(protocolType string, protocols []Protocol) bool {
	if protocolType == "" || len(protocols) == 0 {
		return false
	}
	if len(g.members) == 0 {
		return true
	}
	if protocolType != g.protocolType {
		return false
	}
	for _, p := range protocols {
		if g.supportCount(p.Name) == len(g.members) {
			return true
		}
	}
	return false
}

func (g *group) supportCount(protocol string) int {
	n := 0
	for _, m := range g.members {
		if slices.ContainsFunc(m.protocols, func(p Protocol) bool { return p.Name == protocol }) {
			n++
		}
	}
	return n
}

// selectProtocol picks the protocol of the next generation as Kafka does:
// among the protocols every member supports, each member votes for the one
// it prefers most, and the most votes win. Ties go to the leader's
// preference, so the choice is deterministic.
func (g *group) selectProtocol() string {
	if len(g.members) == 0 {
		return ""
	}
	candidates := make(map[string]bool)
	for _, m := range g.members {
		for _, p := range m.protocols {
			if g.supportCount(p.Name) == len(g.members) {
				candidates[p.Name] = true
			}
		}
	}
	votes := make(map[string]int)
	for _, m := range g.members {
		for _, p := range m.protocols {
			if candidates[p.Name] {
				votes[p.Name]++
				break
			}
		}
	}
	var order []Protocol
	if l := g.members[g.leader]; l != nil {
		order = l.protocols
	} else {
		order = g.sortedMembers()[0].protocols
	}
	best, bestVotes := "", -1
	for _, p := range order {
		if candidates[p.Name] && votes[p.Name] > bestVotes {
			best, bestVotes = p.Name, votes[p.Name]
		}
	}
	return best
}

// checkMember validates a member id, with its instance id for static
// members: FENCED_INSTANCE_ID when the instance id now belongs to a newer
// member id, UNKNOWN_MEMBER_ID when either is unknown.
func (g *group) checkMember(memberID, instanceID string) error {
	if instanceID != "" {
		cur, ok := g.static[instanceID]
		if !ok {
			return errUnknownMember
		}
		if cur != memberID {
			return errFencedInstance
		}
		return nil
	}
	if g.members[memberID] == nil {
		return errUnknownMember
	}
	return nil
}
