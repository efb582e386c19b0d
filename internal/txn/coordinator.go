package txn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/partlog"
)

// Coordinator runs the transactions of the slots this agent leads.
//
// Every operation on a transactional ID holds the ID's lock (an in-memory
// lock: the slot lease already makes this agent the ID's only writer) and
// re-reads the ID's state from the store under it, so memory never holds
// a state that could be stale. A decided transaction's markers are written
// by one completer goroutine per ID; requests for the ID wait for it.
type Coordinator struct {
	cfg   Config
	log   *slog.Logger
	be    Backend
	store metadata.Store
	now   func() time.Time

	mu         sync.Mutex
	locks      map[string]*idLock
	completing map[string]chan struct{} // closed when the ID's completer ends

	// root bounds every completer; Close cancels it and waits.
	root   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// idLock is one transactional ID's lock, shared by the calls that want it.
type idLock struct {
	ch   chan struct{} // holds a token while locked
	refs int
}

// New creates a Coordinator; Run starts its scans and Close stops its
// completers.
func New(cfg Config) (*Coordinator, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	c := &Coordinator{
		cfg:        cfg,
		log:        cfg.Logger.With("component", "txn"),
		be:         cfg.Backend,
		store:      cfg.Backend.Store(),
		now:        cfg.Now,
		locks:      make(map[string]*idLock),
		completing: make(map[string]chan struct{}),
	}
	c.root, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// Close stops the completers and waits for them. Decided transactions whose
// markers are not all written are finished by the slot's next coordinator.
func (c *Coordinator) Close() {
	c.cancel()
	c.wg.Wait()
}

// lock takes id's lock, bounded by ctx.
func (c *Coordinator) lock(ctx context.Context, id string) (unlock func(), err error) {
	c.mu.Lock()
	l := c.locks[id]
	if l == nil {
		l = &idLock{ch: make(chan struct{}, 1)}
		c.locks[id] = l
	}
	l.refs++
	c.mu.Unlock()
	release := func() {
		c.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(c.locks, id)
		}
		c.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}

// waitCompletion waits, bounded by CompletionWait and ctx, for a completer
// of id that is running. It reports whether none is running any more.
func (c *Coordinator) waitCompletion(ctx context.Context, id string) bool {
	c.mu.Lock()
	ch := c.completing[id]
	c.mu.Unlock()
	if ch == nil {
		return true
	}
	t := time.NewTimer(c.cfg.CompletionWait)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// load returns the fence under which this agent coordinates id and id's
// stored state. The fence is taken before the state is read, so a state a
// later holder of the slot wrote is never changed under an older fence.
func (c *Coordinator) load(ctx context.Context, id string) (metadata.GroupFence, metadata.Txn, bool, error) {
	fence, err := c.be.TxnFence(ctx, id)
	if err != nil {
		return metadata.GroupFence{}, metadata.Txn{}, false, coordErr(err)
	}
	t, found, err := c.store.GetTxn(ctx, id)
	if err != nil {
		return metadata.GroupFence{}, metadata.Txn{}, false, fmt.Errorf("load transaction %q: %w", id, err)
	}
	return fence, t, found, nil
}

// put stores t under fence.
func (c *Coordinator) put(ctx context.Context, fence metadata.GroupFence, t metadata.Txn) error {
	t.UpdatedAt = c.now()
	if err := c.store.PutTxn(ctx, fence, t); err != nil {
		return coordErr(fmt.Errorf("store transaction %q (%s): %w", t.TransactionalID, t.State, err))
	}
	return nil
}

// coordErr turns "not the coordinator" (the slot is not led here, or the
// store refused a write under a lease that moved) into Kafka's
// NOT_COORDINATOR, keeping the cause; other errors pass unchanged.
func coordErr(err error) error {
	if errors.Is(err, broker.ErrNotCoordinator) || errors.Is(err, metadata.ErrGroupFenced) {
		return fmt.Errorf("%w: %w", kerr.NotCoordinator, err)
	}
	return err
}

// begin runs the prologue every operation on id shares: wait for a running
// completer, take the lock, load. The caller must call unlock.
func (c *Coordinator) begin(ctx context.Context, id string) (unlock func(), fence metadata.GroupFence, t metadata.Txn, found bool, err error) {
	if id == "" {
		return nil, fence, t, false, fmt.Errorf("%w: empty transactional id", kerr.InvalidRequest)
	}
	c.waitCompletion(ctx, id)
	unlock, err = c.lock(ctx, id)
	if err != nil {
		return nil, fence, t, false, fmt.Errorf("transaction %q: %w", id, err)
	}
	fence, t, found, err = c.load(ctx, id)
	if err != nil {
		unlock()
		return nil, fence, t, false, err
	}
	return unlock, fence, t, found, nil
}

// checkProducer applies Kafka's producer checks of an operation on an open
// or openable transaction.
func checkProducer(t metadata.Txn, producerID int64, epoch int16) error {
	switch {
	case t.ProducerID != producerID:
		return fmt.Errorf("%w: transactional id %q has producer %d, not %d", kerr.InvalidProducerIDMapping, t.TransactionalID, t.ProducerID, producerID)
	case t.ProducerEpoch != epoch:
		return fmt.Errorf("%w: transactional id %q is at epoch %d, the request has %d", kerr.ProducerFenced, t.TransactionalID, t.ProducerEpoch, epoch)
	}
	return nil
}

// preparing reports a transaction whose decision is stored and whose
// markers are still being written.
func preparing(s metadata.TxnStatus) bool {
	return s == metadata.TxnPrepareCommit || s == metadata.TxnPrepareAbort
}

// concurrent is the answer while a transaction's markers are written.
func concurrent(t metadata.Txn) error {
	return fmt.Errorf("%w: transactional id %q is completing its last transaction (%s)", kerr.ConcurrentTransactions, t.TransactionalID, t.State)
}

// InitProducerID is Kafka's InitProducerId for transactional ID id:
// producerID/epoch are the caller's (KIP-360) or -1/-1. It returns the
// producer ID and epoch to use: a new ID at epoch 0 the first time, then
// the same ID with the epoch bumped on every call, which fences every
// older producer of the ID. An open transaction is aborted first (with the
// epoch bumped, so the old producer's writes are refused everywhere).
func (c *Coordinator) InitProducerID(ctx context.Context, id string, timeoutMs int32, producerID int64, epoch int16) (int64, int16, error) {
	if timeoutMs <= 0 || time.Duration(timeoutMs)*time.Millisecond > c.cfg.MaxTimeout {
		return -1, -1, fmt.Errorf("%w: transaction.timeout.ms %d is not in (0, %d]", kerr.InvalidTransactionTimeout, timeoutMs, c.cfg.MaxTimeout.Milliseconds())
	}
	for attempt := 0; ; attempt++ {
		pid, ep, retry, err := c.initOnce(ctx, id, timeoutMs, producerID, epoch)
		if !retry || attempt >= 1 {
			return pid, ep, err
		}
		// An open transaction is being aborted: wait for its markers, then
		// bump once more.
		if !c.waitCompletion(ctx, id) {
			return pid, ep, err
		}
	}
}

func (c *Coordinator) initOnce(ctx context.Context, id string, timeoutMs int32, producerID int64, epoch int16) (pid int64, ep int16, retry bool, err error) {
	unlock, fence, t, found, err := c.begin(ctx, id)
	if err != nil {
		return -1, -1, false, err
	}
	defer unlock()
	if !found {
		// A first init, or a KIP-360 re-init of an ID that was forgotten
		// (IDExpiration): both start over with a new producer, as Kafka
		// does.
		pid, err := c.be.NextProducerID(ctx)
		if err != nil {
			return -1, -1, false, fmt.Errorf("init producer of %q: %w", id, err)
		}
		t = metadata.Txn{TransactionalID: id, ProducerID: pid, ProducerEpoch: 0, LastProducerID: -1, LastProducerEpoch: -1, State: metadata.TxnEmpty, TimeoutMs: timeoutMs}
		if err := c.put(ctx, fence, t); err != nil {
			return -1, -1, false, err
		}
		return t.ProducerID, t.ProducerEpoch, false, nil
	}
	if producerID >= 0 {
		cur := producerID == t.ProducerID && epoch == t.ProducerEpoch
		last := producerID == t.LastProducerID && epoch == t.LastProducerEpoch
		// The producer a V2 EndTxn handed out while its markers are
		// still written (the epoch was exhausted): it is the current one.
		next := preparing(t.State) && t.NextProducerID > 0 && producerID == t.NextProducerID && epoch == 0
		switch {
		case last && preparing(t.State):
			// A retry whose answer was lost, or the producer of a V2
			// transaction just ended: answered once the markers are
			// written.
			c.startCompletion(fence, t)
			return -1, -1, true, concurrent(t)
		case last && t.State != metadata.TxnOngoing:
			// A retry of a call whose answer was lost (or, under
			// transactions V2, a producer re-initialising at the epoch
			// its last EndTxn bumped): it is answered with the current
			// producer.
			return t.ProducerID, t.ProducerEpoch, false, nil
		case !cur && !next:
			return -1, -1, false, fmt.Errorf("%w: transactional id %q is at producer %d epoch %d, the request names %d epoch %d", kerr.ProducerFenced, id, t.ProducerID, t.ProducerEpoch, producerID, epoch)
		}
	}
	switch t.State {
	case metadata.TxnPrepareCommit, metadata.TxnPrepareAbort:
		c.startCompletion(fence, t)
		return -1, -1, true, concurrent(t)
	case metadata.TxnOngoing:
		// Fence the old producer and abort what it left open.
		if err := c.abortOngoing(ctx, fence, &t, true); err != nil {
			return -1, -1, false, err
		}
		return -1, -1, true, concurrent(t)
	}
	last := t
	if t.ProducerEpoch >= math.MaxInt16-1 {
		// The epoch is exhausted: a new producer ID.
		pid, err := c.be.NextProducerID(ctx)
		if err != nil {
			return -1, -1, false, fmt.Errorf("init producer of %q: %w", id, err)
		}
		t.ProducerID, t.ProducerEpoch = pid, 0
	} else {
		t.ProducerEpoch++
	}
	// The producer this one replaces is remembered only for a KIP-360
	// caller (the producer itself, re-initialising): its retry of a lost
	// answer is recognised. A new producer (no ID given) fences every
	// older one, so nothing may be handed back to the ID it replaced, as
	// Kafka sets the last epoch to -1 then.
	if producerID >= 0 {
		t.LastProducerID, t.LastProducerEpoch = last.ProducerID, last.ProducerEpoch
	} else {
		t.LastProducerID, t.LastProducerEpoch = -1, -1
	}
	t.State, t.TimeoutMs, t.Partitions, t.Groups, t.StartedAt = metadata.TxnEmpty, timeoutMs, nil, nil, time.Time{}
	if err := c.put(ctx, fence, t); err != nil {
		return -1, -1, false, err
	}
	return t.ProducerID, t.ProducerEpoch, false, nil
}

// abortOngoing decides to abort t, which is Ongoing, with the producer's
// epoch bumped (its markers then fence the producer's late writes on every
// partition it wrote), and starts writing the markers. Called with t's lock
// held.
//
// fence says why. A new producer of the ID (InitProducerId) fences the old
// one: nothing it sends later is taken for a retry. A timeout only ends the
// transaction: the producer it replaced is remembered, so its abort (EndTxn
// v5 at the old epoch, which franz-go sends on the error its next request
// gets) is answered as a retry with the producer to use next, as Kafka
// answers it under transactions V2, instead of fencing the producer for
// good; at the last epoch the next producer is a new producer ID.
func (c *Coordinator) abortOngoing(ctx context.Context, fence metadata.GroupFence, t *metadata.Txn, fenceProducer bool) error {
	if fenceProducer {
		t.LastProducerID, t.LastProducerEpoch = -1, -1
	} else {
		t.LastProducerID, t.LastProducerEpoch = t.ProducerID, t.ProducerEpoch
		if t.ProducerEpoch >= math.MaxInt16-1 {
			pid, err := c.be.NextProducerID(ctx)
			if err != nil {
				return fmt.Errorf("abort transaction of %q: %w", t.TransactionalID, err)
			}
			t.NextProducerID = pid
		}
	}
	if t.ProducerEpoch < math.MaxInt16 {
		t.ProducerEpoch++
	} else {
		// Never handed out (a new producer ID comes first), but were it:
		// the markers would carry the batches' own epoch, which only the
		// original protocol's marker rule accepts.
		t.ClientVersion = 0
	}
	t.State = metadata.TxnPrepareAbort
	if err := c.put(ctx, fence, *t); err != nil {
		return err
	}
	c.startCompletion(fence, *t)
	return nil
}

// openForAdd applies the checks of AddPartitions, AddOffsets and Begin.
func (c *Coordinator) openForAdd(fence metadata.GroupFence, t metadata.Txn, found bool, id string, producerID int64, epoch int16) error {
	if !found {
		return fmt.Errorf("%w: transactional id %q has no producer", kerr.InvalidProducerIDMapping, id)
	}
	if preparing(t.State) && t.NextProducerID > 0 && producerID == t.NextProducerID && epoch == 0 {
		// The producer a V2 EndTxn handed out (the epoch was exhausted)
		// starts its next transaction once the markers are written.
		c.startCompletion(fence, t)
		return concurrent(t)
	}
	if err := checkProducer(t, producerID, epoch); err != nil {
		return err
	}
	if preparing(t.State) {
		c.startCompletion(fence, t)
		return concurrent(t)
	}
	return nil
}

// open makes t Ongoing if it is not. A transaction's StartedAt (stored in
// milliseconds) is later than the ID's last change, so the transactions
// of one ID have distinct StartedAt values: it identifies the transaction
// (the gRPC transaction_id names it; a completer checks it).
func (c *Coordinator) open(t *metadata.Txn) {
	if t.State != metadata.TxnOngoing {
		start := c.now().Truncate(time.Millisecond)
		if last := t.UpdatedAt.Truncate(time.Millisecond); !start.After(last) {
			start = last.Add(time.Millisecond)
		}
		t.State, t.Partitions, t.Groups, t.StartedAt = metadata.TxnOngoing, nil, nil, start
	}
}

// sameTxn checks, for callers that name one transaction of id by its
// start (gRPC), that t is that transaction and still open.
func sameTxn(t metadata.Txn, started time.Time) error {
	if t.State != metadata.TxnOngoing || t.StartedAt.UnixMilli() != started.UnixMilli() {
		return fmt.Errorf("%w: transactional id %q: the transaction begun at %d ms is over (now %s, begun at %d ms)", kerr.InvalidTxnState, t.TransactionalID, started.UnixMilli(), t.State, t.StartedAt.UnixMilli())
	}
	return nil
}

// AddPartitions adds partitions to the open transaction of id (opening it
// if there is none): all or none.
func (c *Coordinator) AddPartitions(ctx context.Context, id string, producerID int64, epoch int16, parts []metadata.TxnPartition) error {
	return c.addPartitions(ctx, id, producerID, epoch, nil, parts)
}

// AddPartitionsTo is AddPartitions into the open transaction begun at
// started only (gRPC names its transaction): kerr.InvalidTxnState if that
// transaction is over, instead of opening a new one.
func (c *Coordinator) AddPartitionsTo(ctx context.Context, id string, producerID int64, epoch int16, started time.Time, parts []metadata.TxnPartition) error {
	return c.addPartitions(ctx, id, producerID, epoch, &started, parts)
}

func (c *Coordinator) addPartitions(ctx context.Context, id string, producerID int64, epoch int16, started *time.Time, parts []metadata.TxnPartition) error {
	unlock, fence, t, found, err := c.begin(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	if err := c.openForAdd(fence, t, found, id, producerID, epoch); err != nil {
		return err
	}
	if started != nil {
		if err := sameTxn(t, *started); err != nil {
			return err
		}
	}
	wasOpen := t.State == metadata.TxnOngoing
	c.open(&t)
	merged, added := mergePartitions(t.Partitions, parts)
	if wasOpen && !added {
		return nil // all there already: nothing to store
	}
	if len(merged) > c.cfg.MaxPartitions {
		return fmt.Errorf("%w: a transaction may write to at most %d partitions", kerr.InvalidRequest, c.cfg.MaxPartitions)
	}
	t.Partitions = merged
	return c.put(ctx, fence, t)
}

// AddImplicitly is the implicit add of transactions V2 (KIP-890 part 2):
// a partition leader adds the partitions a V2 producer writes to (Produce
// v12 and later), and a group coordinator the group it commits offsets of
// (TxnOffsetCommit v5 and later), to the producer's transaction, opening
// it, before storing anything of it. It runs here when this agent
// coordinates id, else at the agent that does (Backend.RemoteAddToTxn).
// Either of parts and group may be empty.
func (c *Coordinator) AddImplicitly(ctx context.Context, id string, producerID int64, epoch int16, parts []metadata.TxnPartition, group string) error {
	if _, err := c.be.TxnFence(ctx, id); err != nil {
		if !errors.Is(err, broker.ErrNotCoordinator) {
			return err
		}
		return c.be.RemoteAddToTxn(ctx, id, producerID, epoch, parts, group)
	}
	if len(parts) > 0 {
		if err := c.AddPartitions(ctx, id, producerID, epoch, parts); err != nil {
			return err
		}
	}
	if group != "" {
		return c.AddOffsets(ctx, id, producerID, epoch, group)
	}
	return nil
}

// mergePartitions returns have plus add, ordered by topic ID and
// partition without duplicates, and whether add brought anything new.
func mergePartitions(have, add []metadata.TxnPartition) ([]metadata.TxnPartition, bool) {
	out := slices.Clone(have)
	added := false
	for _, p := range add {
		i, found := slices.BinarySearchFunc(out, p, comparePartition)
		if !found {
			out = slices.Insert(out, i, p)
			added = true
		}
	}
	return out, added
}

func comparePartition(a, b metadata.TxnPartition) int {
	if c := slices.Compare(a.TopicID[:], b.TopicID[:]); c != 0 {
		return c
	}
	switch {
	case a.Partition < b.Partition:
		return -1
	case a.Partition > b.Partition:
		return 1
	}
	return 0
}

// AddOffsets adds consumer group group to the open transaction of id
// (opening it if there is none), so TxnOffsetCommit may commit the group's
// offsets in it.
func (c *Coordinator) AddOffsets(ctx context.Context, id string, producerID int64, epoch int16, group string) error {
	if group == "" {
		return fmt.Errorf("%w: empty group id", kerr.InvalidGroupID)
	}
	unlock, fence, t, found, err := c.begin(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	if err := c.openForAdd(fence, t, found, id, producerID, epoch); err != nil {
		return err
	}
	wasOpen := t.State == metadata.TxnOngoing
	c.open(&t)
	i, there := slices.BinarySearch(t.Groups, group)
	if wasOpen && there {
		return nil
	}
	if !there {
		if len(t.Groups) >= c.cfg.MaxPartitions {
			return fmt.Errorf("%w: a transaction may commit offsets of at most %d groups", kerr.InvalidRequest, c.cfg.MaxPartitions)
		}
		t.Groups = slices.Insert(slices.Clone(t.Groups), i, group)
	}
	return c.put(ctx, fence, t)
}

// Begin opens a transaction of id with no partitions yet (gRPC
// BeginTransaction; Kafka clients open one with their first add). A
// transaction already open is kerr.InvalidTxnState. It returns the stored
// transaction.
func (c *Coordinator) Begin(ctx context.Context, id string, producerID int64, epoch int16) (metadata.Txn, error) {
	unlock, fence, t, found, err := c.begin(ctx, id)
	if err != nil {
		return metadata.Txn{}, err
	}
	defer unlock()
	if err := c.openForAdd(fence, t, found, id, producerID, epoch); err != nil {
		return metadata.Txn{}, err
	}
	if t.State == metadata.TxnOngoing {
		return metadata.Txn{}, fmt.Errorf("%w: transactional id %q already has a transaction open", kerr.InvalidTxnState, id)
	}
	c.open(&t)
	if err := c.put(ctx, fence, t); err != nil {
		return metadata.Txn{}, err
	}
	return t, nil
}

// EndTxn commits or aborts the open transaction of id. It returns once the
// decision is stored (with it, the transaction's consumer-group offsets
// became visible or were dropped); the markers follow, and the next
// operation on id waits for them. A retry of an EndTxn that completed is
// answered with success, as Kafka does.
func (c *Coordinator) EndTxn(ctx context.Context, id string, producerID int64, epoch int16, commit bool) error {
	return c.endTxn(ctx, id, producerID, epoch, nil, commit)
}

// EndTxnOf is EndTxn of the open transaction begun at started only (gRPC):
// kerr.InvalidTxnState if that transaction is over.
func (c *Coordinator) EndTxnOf(ctx context.Context, id string, producerID int64, epoch int16, started time.Time, commit bool) error {
	return c.endTxn(ctx, id, producerID, epoch, &started, commit)
}

func (c *Coordinator) endTxn(ctx context.Context, id string, producerID int64, epoch int16, started *time.Time, commit bool) error {
	unlock, fence, t, found, err := c.begin(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	if !found {
		return fmt.Errorf("%w: transactional id %q has no producer", kerr.InvalidProducerIDMapping, id)
	}
	if err := checkProducer(t, producerID, epoch); err != nil {
		return err
	}
	want := metadata.TxnPrepareAbort
	if commit {
		want = metadata.TxnPrepareCommit
	}
	if started != nil && t.StartedAt.UnixMilli() != started.UnixMilli() {
		return sameTxn(t, *started)
	}
	switch t.State {
	case metadata.TxnOngoing:
		t.State, t.ClientVersion = want, 0
		if err := c.put(ctx, fence, t); err != nil {
			return err
		}
		c.startCompletion(fence, t)
		return nil
	case want:
		c.startCompletion(fence, t)
		return concurrent(t)
	case metadata.TxnCompleteCommit:
		if commit {
			return nil
		}
	case metadata.TxnCompleteAbort:
		if !commit {
			return nil
		}
	}
	return fmt.Errorf("%w: cannot %s transactional id %q in state %s", kerr.InvalidTxnState, map[bool]string{true: "commit", false: "abort"}[commit], id, t.State)
}

// EndTxnV2 is EndTxn for transactions V2 (KIP-890 part 2; Kafka's EndTxn
// v5 and later). Every end bumps the producer's epoch: the decision is
// stored with the epoch + 1, the markers carry it (so a late write of the
// ended transaction is refused at every partition, its epoch being older),
// and the producer ID and epoch returned are the ones to use next. An
// epoch that would reach its maximum hands out a new producer ID at epoch
// 0 instead, which replaces the old one once the markers are written.
// Aborting with no transaction open is allowed and just bumps the epoch.
// A retry of an end whose answer was lost (it carries the epoch before the
// bump) is answered CONCURRENT_TRANSACTIONS while the markers are written,
// then with the producer to use next, as Kafka answers it.
func (c *Coordinator) EndTxnV2(ctx context.Context, id string, producerID int64, epoch int16, commit bool) (int64, int16, error) {
	unlock, fence, t, found, err := c.begin(ctx, id)
	if err != nil {
		return -1, -1, err
	}
	defer unlock()
	if !found {
		return -1, -1, fmt.Errorf("%w: transactional id %q has no producer", kerr.InvalidProducerIDMapping, id)
	}
	want, done := metadata.TxnPrepareAbort, metadata.TxnCompleteAbort
	if commit {
		want, done = metadata.TxnPrepareCommit, metadata.TxnCompleteCommit
	}
	next := func() (int64, int16) {
		if t.NextProducerID > 0 {
			return t.NextProducerID, 0
		}
		return t.ProducerID, t.ProducerEpoch
	}
	decided := preparing(t.State) || t.State == metadata.TxnCompleteCommit || t.State == metadata.TxnCompleteAbort
	if decided && producerID == t.LastProducerID && epoch == t.LastProducerEpoch {
		// A retry of the V2 end that decided this transaction, or the
		// producer's abort of a transaction its timeout aborted (only
		// those two leave a decided transaction with the producer it
		// replaced remembered).
		switch t.State {
		case want:
			c.startCompletion(fence, t)
			return -1, -1, concurrent(t)
		case done:
			pid, ep := next()
			return pid, ep, nil
		}
		if commit && (t.State == metadata.TxnPrepareAbort || t.State == metadata.TxnCompleteAbort) {
			// Aborted by its timeout (a V2 end of the producer's own
			// would be a retry of the same decision): the producer
			// aborts too and goes on (TRANSACTION_ABORTABLE, which
			// EndTxn v4 and later may answer and clients recover
			// from by aborting), instead of being fenced for good.
			return -1, -1, fmt.Errorf("%w: transactional id %q: the transaction timed out and was aborted", kerr.TransactionAbortable, id)
		}
		return -1, -1, fmt.Errorf("%w: transactional id %q ended its last transaction as %s", kerr.InvalidTxnState, id, t.State)
	}
	if preparing(t.State) && t.NextProducerID > 0 && producerID == t.NextProducerID && epoch == 0 {
		c.startCompletion(fence, t)
		return -1, -1, concurrent(t)
	}
	if err := checkProducer(t, producerID, epoch); err != nil {
		return -1, -1, err
	}
	switch t.State {
	case metadata.TxnOngoing:
		if err := c.bumpForEnd(ctx, &t); err != nil {
			return -1, -1, err
		}
		t.State = want
		if err := c.put(ctx, fence, t); err != nil {
			return -1, -1, err
		}
		c.startCompletion(fence, t)
		pid, ep := next()
		return pid, ep, nil
	case metadata.TxnPrepareCommit, metadata.TxnPrepareAbort:
		c.startCompletion(fence, t)
		return -1, -1, concurrent(t)
	}
	if commit {
		return -1, -1, fmt.Errorf("%w: transactional id %q has no transaction open to commit (%s)", kerr.InvalidTxnState, id, t.State)
	}
	// An abort with nothing open: the epoch moves on, no marker to write.
	if err := c.bumpForEnd(ctx, &t); err != nil {
		return -1, -1, err
	}
	if t.NextProducerID > 0 {
		t.ProducerID, t.ProducerEpoch, t.NextProducerID = t.NextProducerID, 0, 0
	}
	t.State, t.Partitions, t.Groups, t.StartedAt = done, nil, nil, time.Time{}
	if err := c.put(ctx, fence, t); err != nil {
		return -1, -1, err
	}
	return t.ProducerID, t.ProducerEpoch, nil
}

// bumpForEnd raises t's epoch for a V2 end, remembering the producer it
// replaces for retries, and allocates the next producer ID when the epoch
// is exhausted.
func (c *Coordinator) bumpForEnd(ctx context.Context, t *metadata.Txn) error {
	t.LastProducerID, t.LastProducerEpoch = t.ProducerID, t.ProducerEpoch
	t.NextProducerID = 0
	if t.ProducerEpoch >= math.MaxInt16-1 {
		pid, err := c.be.NextProducerID(ctx)
		if err != nil {
			return fmt.Errorf("end transaction of %q: %w", t.TransactionalID, err)
		}
		t.NextProducerID = pid
	}
	if t.ProducerEpoch < math.MaxInt16 {
		t.ProducerEpoch++
		t.ClientVersion = 2
	} else {
		// Never handed out (see abortOngoing): markers at the batches'
		// own epoch need the original protocol's marker rule.
		t.ClientVersion = 0
	}
	return nil
}

// Describe returns the stored state of id (kerr.TransactionalIDNotFound
// if none). kerr.NotCoordinator when this agent does not coordinate id.
func (c *Coordinator) Describe(ctx context.Context, id string) (metadata.Txn, error) {
	_, t, found, err := c.load(ctx, id)
	if err != nil {
		return metadata.Txn{}, err
	}
	if !found {
		return metadata.Txn{}, fmt.Errorf("%w: %q", kerr.TransactionalIDNotFound, id)
	}
	return t, nil
}

// List returns the transactions matching f that this agent coordinates
// (Kafka's ListTransactions: admin clients ask every agent and merge).
func (c *Coordinator) List(ctx context.Context, f metadata.TxnFilter) ([]metadata.Txn, error) {
	ts, err := c.store.ListTxns(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("list transactions: %w", err)
	}
	mine := ts[:0]
	for _, t := range ts {
		if _, err := c.be.TxnFence(ctx, t.TransactionalID); err == nil {
			mine = append(mine, t)
		}
	}
	return mine, nil
}

// byProducer returns the transaction whose current producer is
// producerID.
func (c *Coordinator) byProducer(ctx context.Context, producerID int64) (metadata.Txn, bool, error) {
	ts, err := c.store.ListTxns(ctx, metadata.TxnFilter{ProducerIDs: []int64{producerID}})
	if err != nil {
		return metadata.Txn{}, false, fmt.Errorf("transaction of producer %d: %w", producerID, err)
	}
	for _, t := range ts {
		if t.ProducerID == producerID {
			return t, true, nil
		}
	}
	return metadata.Txn{}, false, nil
}

// includes reports whether t wrote to tp.
func includes(t metadata.Txn, tp metadata.TopicPartition) bool {
	_, found := slices.BinarySearchFunc(t.Partitions, metadata.TxnPartition{TopicID: tp.TopicID, Partition: tp.Partition}, comparePartition)
	return found
}

// Verify is the log's partlog.VerifyTxnFunc: nil if producerID at epoch
// has an Ongoing transaction that includes tp, read from the store (any
// agent may ask; the coordinator stored the partition before it answered
// AddPartitionsToTxn, and the producer writes only after that answer).
func (c *Coordinator) Verify(ctx context.Context, tp metadata.TopicPartition, producerID int64, epoch int16) error {
	t, found, err := c.byProducer(ctx, producerID)
	switch {
	case err != nil:
		return err
	case !found:
		return fmt.Errorf("producer %d has no transactional id: %w", producerID, partlog.ErrInvalidTxnState)
	case epoch < t.ProducerEpoch:
		return fmt.Errorf("producer %d: epoch %d is older than %d: %w", producerID, epoch, t.ProducerEpoch, partlog.ErrInvalidProducerEpoch)
	case epoch > t.ProducerEpoch:
		return fmt.Errorf("producer %d: epoch %d is newer than the coordinator's %d: %w", producerID, epoch, t.ProducerEpoch, partlog.ErrInvalidTxnState)
	case t.State != metadata.TxnOngoing:
		return fmt.Errorf("producer %d: transaction is %s, not ongoing: %w", producerID, t.State, partlog.ErrInvalidTxnState)
	case !includes(t, tp):
		return fmt.Errorf("producer %d: partition %s was not added to the transaction: %w", producerID, tp, partlog.ErrInvalidTxnState)
	}
	return nil
}

// CheckMarker checks that marker m for tp is one a coordinator decided
// (the transaction of m's producer is PrepareCommit/CompleteCommit for a
// commit marker, PrepareAbort/CompleteAbort for an abort marker, at m's
// epoch and transaction version, and includes tp), so a WriteTxnMarkers request from anything but
// a coordinator changes nothing. kerr.InvalidTxnState otherwise.
func (c *Coordinator) CheckMarker(ctx context.Context, tp metadata.TopicPartition, m partlog.Marker) error {
	t, found, err := c.byProducer(ctx, m.ProducerID)
	if err != nil {
		return err
	}
	ok := found && t.ProducerEpoch == m.ProducerEpoch && t.ClientVersion == m.TransactionVersion && includes(t, tp)
	if ok {
		if m.Commit {
			ok = t.State == metadata.TxnPrepareCommit || t.State == metadata.TxnCompleteCommit
		} else {
			ok = t.State == metadata.TxnPrepareAbort || t.State == metadata.TxnCompleteAbort
		}
	}
	if !ok {
		return fmt.Errorf("%w: no decided transaction of producer %d epoch %d on %s matches the marker", kerr.InvalidTxnState, m.ProducerID, m.ProducerEpoch, tp)
	}
	// The marker must come from the coordinator holding the ID's slot
	// now: its coordinator epoch is the slot's lease epoch. A marker
	// from an older holder is superseded, and one with a made-up epoch
	// (above the real one) would, once stored, fence every real marker
	// of the producer on the partition.
	slot, err := c.be.TxnSlot(ctx, t.TransactionalID)
	if err != nil {
		return fmt.Errorf("marker check: slot of %q: %w", t.TransactionalID, err)
	}
	st, err := c.store.GetPartition(ctx, slot)
	if err != nil {
		return fmt.Errorf("marker check: slot of %q: %w", t.TransactionalID, err)
	}
	switch {
	case m.CoordinatorEpoch < st.LeaderEpoch:
		return fmt.Errorf("%w: marker of producer %d carries coordinator epoch %d, the slot of %q is at %d", kerr.TransactionCoordinatorFenced, m.ProducerID, m.CoordinatorEpoch, t.TransactionalID, st.LeaderEpoch)
	case m.CoordinatorEpoch > st.LeaderEpoch:
		return fmt.Errorf("%w: marker of producer %d carries coordinator epoch %d, above the slot of %q at %d", kerr.InvalidTxnState, m.ProducerID, m.CoordinatorEpoch, t.TransactionalID, st.LeaderEpoch)
	}
	return nil
}

// Run scans, every ScanInterval until ctx is done, for transactions of
// slots this agent leads that timed out (aborted) or are decided with
// markers not all written (finished): after a crash or a slot move, the
// decided transactions of the slot are finished within one interval.
func (c *Coordinator) Run(ctx context.Context) {
	t := time.NewTicker(c.cfg.ScanInterval)
	defer t.Stop()
	var lastExpiry time.Time
	for {
		if err := c.Scan(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("transaction scan", "err", err)
		}
		if now := c.now(); now.Sub(lastExpiry) >= c.cfg.ExpirationInterval {
			lastExpiry = now
			if n, err := c.ExpireIDs(ctx); err != nil && ctx.Err() == nil {
				c.log.Warn("transactional id expiry", "err", err)
			} else if n > 0 {
				c.log.Info("transactional ids expired", "count", n)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Scan runs one pass of Run.
func (c *Coordinator) Scan(ctx context.Context) error {
	ts, err := c.store.ListTxns(ctx, metadata.TxnFilter{States: []metadata.TxnStatus{metadata.TxnOngoing, metadata.TxnPrepareCommit, metadata.TxnPrepareAbort}})
	if err != nil {
		return fmt.Errorf("scan transactions: %w", err)
	}
	now := c.now()
	for _, t := range ts {
		if _, err := c.be.TxnFence(ctx, t.TransactionalID); err != nil {
			continue // another agent's slot (or none's yet)
		}
		switch {
		case preparing(t.State):
			if err := c.resume(ctx, t.TransactionalID); err != nil {
				c.log.Warn("resume decided transaction", "transactional_id", t.TransactionalID, "err", err)
			}
		case t.State == metadata.TxnOngoing && now.After(t.StartedAt.Add(time.Duration(t.TimeoutMs)*time.Millisecond)):
			if err := c.expire(ctx, t); err != nil {
				c.log.Warn("abort timed-out transaction", "transactional_id", t.TransactionalID, "err", err)
			}
		}
	}
	return nil
}

// ExpireIDs forgets the transactional IDs of slots this agent leads that
// have no open transaction and were last used more than IDExpiration ago,
// and returns how many it forgot.
func (c *Coordinator) ExpireIDs(ctx context.Context) (int, error) {
	ts, err := c.store.ListTxns(ctx, metadata.TxnFilter{States: []metadata.TxnStatus{metadata.TxnEmpty, metadata.TxnCompleteCommit, metadata.TxnCompleteAbort}})
	if err != nil {
		return 0, fmt.Errorf("transactional id expiry: %w", err)
	}
	cutoff := c.now().Add(-c.cfg.IDExpiration)
	n := 0
	for _, t := range ts {
		if !t.UpdatedAt.Before(cutoff) {
			continue
		}
		fence, err := c.be.TxnFence(ctx, t.TransactionalID)
		if err != nil {
			continue
		}
		deleted, err := c.forget(ctx, fence, t.TransactionalID, cutoff)
		if err != nil {
			return n, err
		}
		if deleted {
			n++
		}
	}
	return n, nil
}

// forget deletes id if, read again under its lock, it still has no open
// transaction and was last used before cutoff.
func (c *Coordinator) forget(ctx context.Context, fence metadata.GroupFence, id string, cutoff time.Time) (bool, error) {
	unlock, err := c.lock(ctx, id)
	if err != nil {
		return false, err
	}
	defer unlock()
	t, found, err := c.store.GetTxn(ctx, id)
	if err != nil {
		return false, fmt.Errorf("forget transactional id %q: %w", id, err)
	}
	if !found || t.State == metadata.TxnOngoing || preparing(t.State) || !t.UpdatedAt.Before(cutoff) {
		return false, nil
	}
	// DeleteTxn also checks the producer, in its own transaction.
	if err := c.store.DeleteTxn(ctx, fence, id, t.ProducerID, t.ProducerEpoch); err != nil {
		return false, fmt.Errorf("forget transactional id %q: %w", id, err)
	}
	return true, nil
}

// resume starts the completer of id's decided transaction, from the state
// read again under id's lock (never from a scan's snapshot, which may
// predate a completion and the next transaction's start). Every
// completer starts this way, under the lock with the state just loaded,
// so a completer only ever writes markers of the transaction that is
// decided in the store, and one runs per ID at a time.
func (c *Coordinator) resume(ctx context.Context, id string) error {
	unlock, err := c.lock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	fence, t, found, err := c.load(ctx, id)
	if err != nil {
		return err
	}
	if found && preparing(t.State) {
		c.startCompletion(fence, t)
	}
	return nil
}

// expire aborts t if it is still the same Ongoing transaction and past its
// timeout.
func (c *Coordinator) expire(ctx context.Context, seen metadata.Txn) error {
	unlock, err := c.lock(ctx, seen.TransactionalID)
	if err != nil {
		return err
	}
	defer unlock()
	fence, t, found, err := c.load(ctx, seen.TransactionalID)
	if err != nil || !found {
		return err
	}
	if t.State != metadata.TxnOngoing || t.ProducerID != seen.ProducerID || t.ProducerEpoch != seen.ProducerEpoch || !t.StartedAt.Equal(seen.StartedAt) {
		return nil
	}
	c.log.Info("aborting timed-out transaction", "transactional_id", t.TransactionalID, "producer_id", t.ProducerID, "epoch", t.ProducerEpoch, "timeout_ms", t.TimeoutMs)
	return c.abortOngoing(ctx, fence, &t, false)
}

// startCompletion starts writing the markers of t (PrepareCommit or
// PrepareAbort) unless a completer for its ID is running. Called with the
// ID's lock held and t just loaded (see resume).
func (c *Coordinator) startCompletion(fence metadata.GroupFence, t metadata.Txn) {
	c.mu.Lock()
	if c.completing[t.TransactionalID] != nil || c.root.Err() != nil {
		c.mu.Unlock()
		return
	}
	done := make(chan struct{})
	c.completing[t.TransactionalID] = done
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		defer func() {
			c.mu.Lock()
			delete(c.completing, t.TransactionalID)
			c.mu.Unlock()
			close(done)
		}()
		if err := c.complete(c.root, fence, t); err != nil && c.root.Err() == nil {
			c.log.Warn("complete transaction", "transactional_id", t.TransactionalID, "state", t.State, "err", err)
		}
	}()
}

// complete writes t's markers to every partition of t, then stores the
// Complete state. It gives up (leaving the transaction to the slot's next
// coordinator, which finishes it) when the fence stops holding.
func (c *Coordinator) complete(ctx context.Context, fence metadata.GroupFence, t metadata.Txn) error {
	m := partlog.Marker{ProducerID: t.ProducerID, ProducerEpoch: t.ProducerEpoch, Commit: t.State == metadata.TxnPrepareCommit,
		CoordinatorEpoch: fence.Epoch, TransactionVersion: t.ClientVersion}
	errs := make(chan error, len(t.Partitions))
	sem := make(chan struct{}, 16)
	for _, p := range t.Partitions {
		go func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs <- c.writeMarker(ctx, fence, p, m)
		}()
	}
	var first error
	for range t.Partitions {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		return first
	}
	unlock, err := c.lock(ctx, t.TransactionalID)
	if err != nil {
		return err
	}
	defer unlock()
	fence2, cur, found, err := c.load(ctx, t.TransactionalID)
	if err != nil {
		return err
	}
	if !found || cur.ProducerID != t.ProducerID || cur.ProducerEpoch != t.ProducerEpoch || cur.State != t.State || !cur.StartedAt.Equal(t.StartedAt) {
		return nil // someone else finished it
	}
	if m.Commit {
		cur.State = metadata.TxnCompleteCommit
	} else {
		cur.State = metadata.TxnCompleteAbort
	}
	cur.StartedAt = time.Time{}
	if cur.NextProducerID > 0 {
		// The V2 end exhausted the epoch: its producer goes on with
		// the producer ID it was handed.
		cur.ProducerID, cur.ProducerEpoch, cur.NextProducerID = cur.NextProducerID, 0, 0
	}
	return c.put(ctx, fence2, cur)
}

// writeMarker writes m to p, retrying retriable failures with backoff
// until it is durable or the fence stops holding.
func (c *Coordinator) writeMarker(ctx context.Context, fence metadata.GroupFence, p metadata.TxnPartition, m partlog.Marker) error {
	backoff := 20 * time.Millisecond
	for {
		if !c.be.Holds(fence) {
			return fmt.Errorf("marker for %s/%d: %w", p.Topic, p.Partition, kerr.NotCoordinator)
		}
		actx, cancel := context.WithTimeout(ctx, c.cfg.MarkerTimeout)
		err := c.be.WriteMarker(actx, p, m)
		timedOut := errors.Is(actx.Err(), context.DeadlineExceeded)
		cancel()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, broker.ErrUnknownTopic), errors.Is(err, broker.ErrUnknownPartition):
			// Deleted with its data: nothing left to mark.
			c.log.Info("transaction marker for a deleted partition dropped", "topic", p.Topic, "partition", p.Partition)
			return nil
		case errors.Is(err, partlog.ErrInvalidProducerEpoch), errors.Is(err, partlog.ErrInvalidTxnState), errors.Is(err, partlog.ErrCoordinatorFenced):
			// The leader refuses the marker for good: a newer epoch or
			// coordinator superseded this completion (the stored state
			// moved on), or the stored decision does not match it.
			// Retrying cannot help; this completion ends, and if the
			// transaction is still decided the next scan starts over
			// from the stored state.
			return fmt.Errorf("marker for %s/%d refused: %w", p.Topic, p.Partition, err)
		case ctx.Err() != nil:
			return ctx.Err()
		}
		wait := backoff
		if timedOut {
			// The attempt may still be queued at the leader, which gives
			// up on it after MarkerTimeout: no retry succeeds before then.
			wait = c.cfg.MarkerTimeout
		}
		c.log.Debug("transaction marker failed; retrying", "topic", p.Topic, "partition", p.Partition, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, time.Second)
	}
}
