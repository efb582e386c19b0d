package fault

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// The nemesis applies one fault at a time, each healed before the next,
// on a schedule drawn from a seed: the first faults are the kinds in a
// seeded order (every run has each at least once), then kinds at random
// until the run's duration has passed.

type faultKind string

const (
	faultKill      faultKind = "kill"         // kill -9 an agent, restart it
	faultPause     faultKind = "pause"        // SIGSTOP an agent past its lease, then SIGCONT
	faultS3        faultKind = "object-store" // the object store unavailable for seconds
	faultPGRestart faultKind = "pg-restart"   // pg_ctl restart -m fast
	faultPGCut     faultKind = "pg-cut"       // one agent cut off from PostgreSQL past its lease
	// kill -9 the agent a transactional producer's EndTxn(commit) was just
	// written to (its transaction coordinator), while the commit is in
	// flight, and restart it
	faultTxnKill faultKind = "txn-coordinator-kill"
)

var faultKinds = []faultKind{faultKill, faultPause, faultS3, faultPGRestart, faultPGCut, faultTxnKill}

// fault is one applied fault, for the log and for the leader-gap measure.
type fault struct {
	Kind       faultKind
	Agent      int // the agent attacked, -1 for a store fault
	Detail     string
	Start, End time.Time // from the attack to the heal (for a kill: until the restarted agent is ready)
}

// cluster is everything the nemesis can attack.
type cluster struct {
	pg       *postgres
	s3       *objectStore
	agents   []*agent
	adm      *kadm.Client
	leaseTTL time.Duration
	began    time.Time
	logf     func(format string, args ...any)
	progress func() string // the workload's counts so far, for the log
	txn      *txnWorkload  // the transactional producers, for faultTxnKill

	mu     sync.Mutex
	faults []fault
}

// nemesis runs faults from rng until ctx is done or duration has passed
// (and every kind has run once). An error is a fault that could not be
// applied or healed, which the caller reports.
func (c *cluster) nemesis(ctx context.Context, seed uint64, duration time.Duration) error {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	first := rng.Perm(len(faultKinds))
	end := time.Now().Add(duration)
	pauses := 0
	for i := 0; ; i++ {
		// Every draw happens whatever the fault, so a seed always gives the
		// same schedule.
		kind := faultKinds[rng.IntN(len(faultKinds))]
		if i < len(first) {
			kind = faultKinds[first[i]]
		}
		gap := 2*time.Second + time.Duration(rng.Int64N(int64(3*time.Second)))
		target := rng.IntN(len(c.agents))
		atCoordinator := rng.IntN(2) == 0
		frac := rng.Float64()
		mode := rng.IntN(2)
		txnProducer := rng.IntN(txnProducers)
		frac2 := rng.Float64()
		if i >= len(first) && time.Now().Add(gap).After(end) {
			return nil
		}
		if err := sleep(ctx, gap); err != nil {
			return nil
		}
		if kind == faultPause {
			// The first pause is of the cooperative group's coordinator:
			// the pause that moves a coordinator is the one that tests
			// group generations and fencing.
			atCoordinator = atCoordinator || pauses == 0
			pauses++
		}
		role := ""
		if atCoordinator && (kind == faultPause || kind == faultKill || kind == faultPGCut) {
			if a, ok := c.coordinator(ctx, groups[0].name); ok {
				target, role = a, " (coordinator of "+groups[0].name+")"
			}
		}
		if kind == faultTxnKill {
			if err := c.killTxnCoordinator(ctx, txnProducer, mode == 1, frac, frac2); err != nil {
				return fmt.Errorf("fault %d (%s): %w", i+1, kind, err)
			}
			continue
		}
		if err := c.apply(ctx, kind, target, role, frac, mode); err != nil {
			return fmt.Errorf("fault %d (%s): %w", i+1, kind, err)
		}
	}
}

// apply runs one fault and heals it.
func (c *cluster) apply(ctx context.Context, kind faultKind, target int, role string, frac float64, mode int) error {
	f := fault{Kind: kind, Agent: -1, Start: time.Now()}
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(frac*float64(hi-lo)) }
	var err error
	switch kind {
	case faultKill:
		a := c.agents[target]
		f.Agent = target
		down := between(0, 2*time.Second)
		f.Detail = fmt.Sprintf("%s%s down %v", a.id, role, down.Round(time.Millisecond))
		c.note(f, "begins")
		a.stop(syscall.SIGKILL)
		if err = sleep(ctx, down); err == nil {
			err = a.start(ctx)
		}
	case faultPause:
		a := c.agents[target]
		f.Agent = target
		d := c.leaseTTL + between(time.Second, 5*time.Second)
		f.Detail = fmt.Sprintf("%s%s stopped %v (lease %v)", a.id, role, d.Round(time.Millisecond), c.leaseTTL)
		c.note(f, "begins")
		if err = a.signal(syscall.SIGSTOP); err == nil {
			_ = sleep(ctx, d)
			err = a.signal(syscall.SIGCONT)
		}
	case faultS3:
		d := between(3*time.Second, 8*time.Second)
		if mode == 0 {
			f.Detail = fmt.Sprintf("versitygw stopped (SIGSTOP) %v", d.Round(time.Millisecond))
			c.note(f, "begins")
			if err = c.s3.proc.signal(syscall.SIGSTOP); err == nil {
				_ = sleep(ctx, d)
				err = c.s3.proc.signal(syscall.SIGCONT)
			}
		} else {
			f.Detail = fmt.Sprintf("every agent's S3 proxy cut %v", d.Round(time.Millisecond))
			c.note(f, "begins")
			for _, a := range c.agents {
				a.s3.Cut()
			}
			_ = sleep(ctx, d)
			for _, a := range c.agents {
				a.s3.Heal()
			}
		}
	case faultPGRestart:
		f.Detail = "fast shutdown and start"
		c.note(f, "begins")
		err = c.pg.restartFast(ctx)
	case faultPGCut:
		a := c.agents[target]
		f.Agent = target
		d := 2*c.leaseTTL + between(0, 2*time.Second)
		f.Detail = fmt.Sprintf("%s%s cut off from PostgreSQL %v (lease %v)", a.id, role, d.Round(time.Millisecond), c.leaseTTL)
		c.note(f, "begins")
		a.pg.Cut()
		_ = sleep(ctx, d)
		a.pg.Heal()
	}
	c.healed(f)
	return err
}

// healed records f as over now.
func (c *cluster) healed(f fault) {
	f.End = time.Now()
	c.mu.Lock()
	c.faults = append(c.faults, f)
	c.mu.Unlock()
	c.note(f, fmt.Sprintf("healed after %v", f.End.Sub(f.Start).Round(time.Millisecond)))
}

// killTxnCoordinator kills -9 the agent that transactional producer p's
// next EndTxn(commit) is written to, delay (0 to 15 ms, from frac) after
// the write, so the commit is in flight: before, while or after the
// coordinator stores its decision. With answered, the kill comes 0 to 5 ms
// after the producer read the answer (its commit acknowledged), while the
// coordinator writes the markers. The agent restarts after 0 to 2 s (from
// frac2). Should no commit come within 15 s, the coordinator
// FindCoordinator names is killed anyway.
func (c *cluster) killTxnCoordinator(ctx context.Context, p int, answered bool, frac, frac2 float64) error {
	f := fault{Kind: faultTxnKill, Agent: -1, Start: time.Now()}
	prod := c.txn.producers[p]
	named, namedOK := c.txnCoordinator(ctx, prod.tid)
	found := namedOK
	ch := prod.armCommit(answered)
	delay := time.Duration(frac * float64(15*time.Millisecond))
	if answered {
		delay = time.Duration(frac * float64(5*time.Millisecond))
	}
	down := time.Duration(frac2 * float64(2*time.Second))
	target, how := named, ""
	var written *endTxnWrite
	select {
	case w := <-ch:
		written = &w
		if err := sleep(ctx, delay); err != nil {
			return nil
		}
		if i := slices.IndexFunc(c.agents, func(a *agent) bool { return strings.EqualFold(a.kafkaAddr, w.Addr) }); i >= 0 {
			target, found = i, true
		}
		what := "was written to"
		if answered {
			what = "was answered by"
		}
		how = fmt.Sprintf("%v after the EndTxn(commit) of transaction %d of %s %s %s", delay.Round(100*time.Microsecond), w.Txn, prod.tid, what, w.Addr)
	case <-time.After(15 * time.Second):
		prod.disarm()
		how = fmt.Sprintf("with no commit of %s in flight within 15 s", prod.tid)
	case <-ctx.Done():
		prod.disarm()
		return nil
	}
	if !found {
		return fmt.Errorf("the coordinator of %s is not known (FindCoordinator failed and no EndTxn was written to an agent)", prod.tid)
	}
	a := c.agents[target]
	f.Agent, f.Start = target, time.Now()
	byFind := "FindCoordinator failed before"
	if namedOK {
		byFind = "FindCoordinator named " + c.agents[named].id + " before"
	}
	f.Detail = fmt.Sprintf("%s killed %s (%s), down %v", a.id, how, byFind, down.Round(time.Millisecond))
	killed := time.Now()
	a.stop(syscall.SIGKILL) // before the note: the delay is what it says
	c.note(f, "begins")
	err := sleep(ctx, down)
	if err == nil {
		err = a.start(ctx)
	}
	if written != nil {
		f.Detail += "; " + c.txn.told(txnKey{p, written.Txn}, killed)
	}
	c.healed(f)
	return err
}

// txnCoordinator is the agent coordinating transactional ID id
// (FindCoordinator, key type transaction), if it can be found.
func (c *cluster) txnCoordinator(ctx context.Context, id string) (int, bool) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	r, ok := c.adm.FindTxnCoordinators(ctx, id)[id]
	if !ok || r.Err != nil {
		return 0, false
	}
	addr := fmt.Sprintf("%s:%d", r.Host, r.Port)
	i := slices.IndexFunc(c.agents, func(a *agent) bool { return strings.EqualFold(a.kafkaAddr, addr) })
	return i, i >= 0
}

func (c *cluster) note(f fault, what string) {
	c.logf("nemesis %s (+%v): %s %s: %s [%s]", time.Now().UTC().Format("15:04:05.000"),
		time.Since(c.began).Round(time.Millisecond), f.Kind, f.Detail, what, c.progress())
}

// healAll undoes whatever a failed or interrupted fault may have left:
// every process resumed, every proxy healed, every agent running.
func (c *cluster) healAll(ctx context.Context) error {
	var errs []error
	_ = c.s3.proc.signal(syscall.SIGCONT)
	for _, a := range c.agents {
		a.pg.Heal()
		a.s3.Heal()
		_ = a.signal(syscall.SIGCONT)
	}
	c.pg.mu.Lock()
	pgDown := c.pg.proc.exited()
	c.pg.mu.Unlock()
	if pgDown {
		errs = append(errs, c.pg.start(ctx))
	}
	for _, a := range c.agents {
		a.mu.Lock()
		down := a.proc == nil || a.proc.exited()
		a.mu.Unlock()
		if down {
			errs = append(errs, a.start(ctx))
		}
	}
	return errors.Join(errs...)
}

// coordinator is the agent coordinating group, if it can be found.
func (c *cluster) coordinator(ctx context.Context, group string) (int, bool) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	resps := c.adm.FindGroupCoordinators(ctx, group)
	r, ok := resps[group]
	if !ok || r.Err != nil {
		return 0, false
	}
	addr := fmt.Sprintf("%s:%d", r.Host, r.Port)
	i := slices.IndexFunc(c.agents, func(a *agent) bool { return strings.EqualFold(a.kafkaAddr, addr) })
	return i, i >= 0
}

// down reports whether agent i was dead, paused or cut off from
// PostgreSQL at t.
func (c *cluster) down(i int, t time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.faults {
		if f.Agent == i && (f.Kind == faultKill || f.Kind == faultPause || f.Kind == faultPGCut || f.Kind == faultTxnKill) &&
			!t.Before(f.Start) && t.Before(f.End) {
			return true
		}
	}
	return false
}

// faultAt names the fault in progress at t, if any.
func (c *cluster) faultAt(t time.Time) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.faults {
		if !t.Before(f.Start) && t.Before(f.End.Add(c.leaseTTL)) {
			return string(f.Kind) + " " + f.Detail
		}
	}
	return "no fault"
}

// faultsDuring names the faults that overlapped from..to (each with its
// lease's worth of aftermath), briefly, or "no fault".
func (c *cluster) faultsDuring(from, to time.Time) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, f := range c.faults {
		if f.Start.Before(to) && from.Before(f.End.Add(c.leaseTTL)) {
			s := string(f.Kind)
			if f.Agent >= 0 {
				s += " of " + c.agents[f.Agent].id
			}
			out = append(out, s+" at "+f.Start.UTC().Format("15:04:05.000"))
		}
	}
	if len(out) == 0 {
		return "no fault"
	}
	return strings.Join(out, " and ")
}

// sleep waits d or until ctx is done (a fault's length, not a wait for a
// condition).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
