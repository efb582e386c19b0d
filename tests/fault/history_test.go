package fault

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// history is everything the clients saw during a run, recorded as it
// happens for the checker. Every method is safe for concurrent use.
type history struct {
	mu sync.Mutex

	acks      map[string]position // value -> where its ack put it
	ackDups   []string            // a value acknowledged twice
	sent      int
	prodErrs  map[string]*errCount // produce failures by error
	reads     int                  // records group members got
	fetchErrs map[string]*errCount // group members' fetch errors by error

	// seen is every (partition, offset) -> value observed by anyone: acks,
	// group members and the final read. conflicts are observations that
	// disagreed with an earlier one.
	seen      map[position]string
	conflicts []string

	groups map[string]*groupHistory
	meta   []metaSample

	// The transactional workload: every transaction begun and the outcome
	// its producer saw, what the read_committed reader saw during the run,
	// and the pipeline's transactions.
	txns      map[txnKey]*txnObs
	txnErrs   map[string]*errCount // transactional producers' errors
	rcReads   []rcObs              // the read_committed reader, during the run
	rcErrs    map[string]*errCount // its fetch errors
	eosEnds   map[string]int       // pipeline transactions by outcome (committed, aborted, failed)
	eosErrs   map[string]*errCount // the pipeline's errors
	eosOutput int                  // records the pipeline produced in committed transactions

	compact *compactHistory // the compacted topic's workload (its own lock)
}

// txnKey names one transaction: producer p's n'th.
type txnKey struct{ Producer, N int }

func (k txnKey) String() string { return fmt.Sprintf("transaction %d of producer %d", k.N, k.Producer) }

// txnOutcome is what a transactional producer was told about a
// transaction.
type txnOutcome int

const (
	txnOpen      txnOutcome = iota // not ended yet (the run stopped first, or recorded no end)
	txnCommitted                   // EndTransaction(commit) returned nil
	txnAborted                     // a commit was never asked (the producer aborted or gave up before)
	txnUnknown                     // a commit was asked and its answer was an error
)

func (o txnOutcome) String() string {
	return [...]string{"open", "committed", "aborted", "unknown"}[o]
}

// txnObs is one transaction as its producer saw it.
type txnObs struct {
	Count        int // records in the transaction
	Outcome      txnOutcome
	AbortConfirm bool   // for aborted: EndTransaction(abort) returned nil
	Err          string // the error that made the outcome unknown or the transaction give up
	Start, End   time.Time
}

// rcObs is one record the read_committed reader got during the run.
type rcObs struct {
	At    time.Time
	Pos   position
	Value string
}

// position is one record's place in the topic.
type position struct {
	Partition int32
	Offset    int64
}

func (p position) String() string { return fmt.Sprintf("%d/%d", p.Partition, p.Offset) }

// groupHistory is what one consumer group's members and the outside poller
// saw.
type groupHistory struct {
	read    map[position]bool              // offsets some member read
	commits map[int32][]commitObs          // successful commits, per partition
	polled  map[int32][]committedObs       // committed offsets from the outside poller, per partition (changes only)
	owners  map[int32]map[int32][]ownerObs // generation -> partition -> members that owned it
	assigns int                            // assignment callbacks
}

// ownerObs is a member owning a partition from At on.
type ownerObs struct {
	Member int
	At     time.Time
}

// commitObs is one commit a member was told succeeded.
type commitObs struct {
	At         time.Time
	Member     int
	Generation int32
	Offset     int64
}

// committedObs is one committed offset read from the outside.
type committedObs struct {
	At     time.Time
	Offset int64
}

// metaSample is one Metadata answer: the leader of every partition, and
// which agent each broker node is (-1 when unknown).
type metaSample struct {
	At      time.Time
	Leaders map[int32]int32 // partition -> leader node (-1: none)
	Agents  map[int32]int   // node -> agent index
}

func newHistory() *history {
	return &history{
		acks:      map[string]position{},
		prodErrs:  map[string]*errCount{},
		fetchErrs: map[string]*errCount{},
		seen:      map[position]string{},
		groups:    map[string]*groupHistory{},
		txns:      map[txnKey]*txnObs{},
		txnErrs:   map[string]*errCount{},
		rcErrs:    map[string]*errCount{},
		eosEnds:   map[string]int{},
		eosErrs:   map[string]*errCount{},
		compact:   newCompactHistory(),
	}
}

func (h *history) group(name string) *groupHistory {
	g := h.groups[name]
	if g == nil {
		g = &groupHistory{
			read:    map[position]bool{},
			commits: map[int32][]commitObs{},
			polled:  map[int32][]committedObs{},
			owners:  map[int32]map[int32][]ownerObs{},
		}
		h.groups[name] = g
	}
	return g
}

// observe records that value was seen at pos by who; h.mu is held.
func (h *history) observe(pos position, value, who string) {
	prev, ok := h.seen[pos]
	switch {
	case !ok:
		h.seen[pos] = value
	case prev != value:
		h.conflicts = append(h.conflicts, fmt.Sprintf("%s: %s saw %q where %q was seen before", pos, who, value, prev))
	}
}

func (h *history) sentOne() {
	h.mu.Lock()
	h.sent++
	h.mu.Unlock()
}

func (h *history) acked(value string, pos position) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if prev, ok := h.acks[value]; ok {
		h.ackDups = append(h.ackDups, fmt.Sprintf("%q acknowledged at %s and at %s", value, prev, pos))
		return
	}
	h.acks[value] = pos
	h.observe(pos, value, "a produce ack")
}

// errCount is how often an error happened, and when first and last.
type errCount struct {
	N           int
	First, Last time.Time
}

func countErr(m map[string]*errCount, err error) {
	now := time.Now()
	c := m[err.Error()]
	if c == nil {
		c = &errCount{First: now}
		m[err.Error()] = c
	}
	c.N++
	c.Last = now
}

func (h *history) produceFailed(err error) {
	h.mu.Lock()
	countErr(h.prodErrs, err)
	h.mu.Unlock()
}

func (h *history) fetchFailed(err error) {
	h.mu.Lock()
	countErr(h.fetchErrs, err)
	h.mu.Unlock()
}

// read records a record a group member (group != "") or the final reader
// got.
func (h *history) read(group string, member int, pos position, value string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	who := "the final read"
	if group != "" {
		h.reads++
		h.group(group).read[pos] = true
		who = fmt.Sprintf("%s member %d", group, member)
	}
	h.observe(pos, value, who)
}

func (h *history) committed(group string, c commitObs, partition int32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	g := h.group(group)
	g.commits[partition] = append(g.commits[partition], c)
}

// polledOffset records a committed offset read from the outside, when it
// differs from the previous one.
func (h *history) polledOffset(group string, partition int32, at time.Time, offset int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	g := h.group(group)
	s := g.polled[partition]
	if n := len(s); n > 0 && s[n-1].Offset == offset {
		return
	}
	g.polled[partition] = append(s, committedObs{At: at, Offset: offset})
}

// owned records what a member owns once a generation's assignment is done.
func (h *history) owned(group string, member int, generation int32, partitions []int32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	g := h.group(group)
	g.assigns++
	byPart := g.owners[generation]
	if byPart == nil {
		byPart = map[int32][]ownerObs{}
		g.owners[generation] = byPart
	}
	now := time.Now()
	for _, p := range partitions {
		if !slices.ContainsFunc(byPart[p], func(o ownerObs) bool { return o.Member == member }) {
			byPart[p] = append(byPart[p], ownerObs{member, now})
		}
	}
}

// txnBegun records that k is about to produce count records.
func (h *history) txnBegun(k txnKey, count int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.txns[k] = &txnObs{Count: count, Start: time.Now()}
}

// txnEnded records the outcome k's producer saw; err (may be nil) is why
// it is unknown or why the producer gave up.
func (h *history) txnEnded(k txnKey, o txnOutcome, abortConfirmed bool, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.txns[k]
	if t == nil {
		return
	}
	t.Outcome, t.AbortConfirm, t.End = o, abortConfirmed, time.Now()
	if err != nil {
		t.Err = err.Error()
		countErr(h.txnErrs, err)
	}
}

// txnFailed counts an error of a transactional producer outside a
// transaction's outcome (creating a client, recovering).
func (h *history) txnFailed(err error) {
	h.mu.Lock()
	countErr(h.txnErrs, err)
	h.mu.Unlock()
}

func (h *history) rcRead(pos position, value string) {
	h.mu.Lock()
	h.rcReads = append(h.rcReads, rcObs{At: time.Now(), Pos: pos, Value: value})
	h.mu.Unlock()
}

func (h *history) rcFailed(err error) {
	h.mu.Lock()
	countErr(h.rcErrs, err)
	h.mu.Unlock()
}

// eosEnded records one pipeline transaction's end: committed (with n
// records produced in it), aborted, or failed with err.
func (h *history) eosEnded(committed bool, n int, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case err != nil:
		h.eosEnds["failed"]++
		countErr(h.eosErrs, err)
	case committed:
		h.eosEnds["committed"]++
		h.eosOutput += n
	default:
		h.eosEnds["aborted"]++
	}
}

func (h *history) eosFailed(err error) {
	h.mu.Lock()
	countErr(h.eosErrs, err)
	h.mu.Unlock()
}

// txnCounts is how many transactions ended with each outcome.
func (h *history) txnCounts() map[txnOutcome]int {
	out := map[txnOutcome]int{}
	for _, t := range h.txns {
		out[t.Outcome]++
	}
	return out
}

func (h *history) metadata(s metaSample) {
	h.mu.Lock()
	h.meta = append(h.meta, s)
	h.mu.Unlock()
}

// topErrors formats the most frequent errors of m, each with when it
// happened (and, through at, during which fault).
func topErrors(m map[string]*errCount, n int, at func(time.Time) string) string {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b string) int { return m[b].N - m[a].N })
	var out []string
	for i, k := range keys {
		if i == n {
			out = append(out, fmt.Sprintf("%d more kinds", len(keys)-n))
			break
		}
		c := m[k]
		out = append(out, fmt.Sprintf("%dx %s (%s to %s, first during %s)", c.N, k,
			c.First.UTC().Format("15:04:05.000"), c.Last.UTC().Format("15:04:05.000"), at(c.First)))
	}
	return strings.Join(out, "; ")
}

func sumCounts(m map[string]*errCount) int {
	n := 0
	for _, c := range m {
		n += c.N
	}
	return n
}
