package fs

import (
	"context"
	"sync"
	"time"
)

// headJob is one HEAD started by a listing.
type headJob struct {
	key    string
	e      *statEntry
	listed objMeta
}

// headQueue runs the HEADs that listings start, with a fixed number of
// workers for the whole mount, in the order the listings asked.
//
// Lock order: mu alone; never held across a HEAD.
type headQueue struct {
	mu   sync.Mutex
	cond *sync.Cond
	jobs []headJob
	done bool
}

func newHeadQueue(ctx context.Context, workers int, run func(context.Context, headJob)) *headQueue {
	q := &headQueue{}
	q.cond = sync.NewCond(&q.mu)
	for range workers {
		go q.work(ctx, run)
	}
	go func() {
		<-ctx.Done()
		q.mu.Lock()
		q.done = true
		q.mu.Unlock()
		q.cond.Broadcast()
	}()
	return q
}

func (q *headQueue) add(jobs []headJob) {
	q.mu.Lock()
	q.jobs = append(q.jobs, jobs...)
	q.mu.Unlock()
	q.cond.Broadcast()
}

func (q *headQueue) work(ctx context.Context, run func(context.Context, headJob)) {
	for {
		q.mu.Lock()
		for len(q.jobs) == 0 && !q.done {
			q.cond.Wait()
		}
		if q.done {
			jobs := q.jobs
			q.jobs = nil
			q.mu.Unlock()
			for _, j := range jobs {
				j.e.failed = true
				close(j.e.done)
			}
			return
		}
		j := q.jobs[0]
		q.jobs[0] = headJob{}
		q.jobs = q.jobs[1:]
		q.mu.Unlock()
		run(ctx, j)
	}
}

// lazyHeads holds the file entries of one-page listings whose metadata is
// not known, until something asks for one of them: then the HEADs of the
// whole listing go out together. `ls -l` gets them all in parallel after
// its first stat; `find`, which never asks for a file's attributes, sends
// none. Listings of more than one page start their HEADs at once instead,
// so that they overlap the paging.
//
// Lock order: mu alone.
type lazyHeads struct {
	mu     sync.Mutex
	groups map[string]*lazyGroup // by key
	// sweepAt: the size at which add drops expired groups next (it
	// doubles with what stays, so that adds cost O(1) on average).
	sweepAt int
}

// Bounds of lazyHeads: it is swept of expired groups once it holds
// lazySweep keys (then twice what stayed), and never holds more than
// lazyMax: past that, groups are dropped, their files' attributes then
// fetched one HEAD at a time when asked for.
var (
	lazySweep = 1 << 16
	lazyMax   = 1 << 20
)

type lazyGroup struct {
	jobs    []headJob // e is nil until started
	expires time.Time
	dir     *Dir // whose listing it is: marked statted when started
}

// add records the entries of dir's listing for ttl.
func (l *lazyHeads) add(jobs []headJob, ttl time.Duration, dir *Dir) {
	now := time.Now()
	g := &lazyGroup{jobs: jobs, expires: now.Add(ttl), dir: dir}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.groups == nil {
		l.groups = map[string]*lazyGroup{}
	}
	if len(l.groups) > max(l.sweepAt, lazySweep) {
		for k, og := range l.groups {
			if now.After(og.expires) {
				delete(l.groups, k)
			}
		}
		l.sweepAt = 2 * len(l.groups)
	}
	for k := range l.groups {
		if len(l.groups)+len(jobs) <= lazyMax {
			break
		}
		delete(l.groups, k)
	}
	for _, j := range jobs {
		l.groups[j.key] = g
	}
}

// has reports whether key waits in a listing.
func (l *lazyHeads) has(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	g, ok := l.groups[key]
	return ok && time.Now().Before(g.expires)
}

// take removes and returns the listing key waits in, with key first.
func (l *lazyHeads) take(key string) []headJob {
	l.mu.Lock()
	defer l.mu.Unlock()
	g, ok := l.groups[key]
	if !ok {
		return nil
	}
	var jobs []headJob
	for _, j := range g.jobs {
		if l.groups[j.key] != g {
			continue // listed again since, or taken
		}
		delete(l.groups, j.key)
		if j.key == key {
			jobs = append([]headJob{j}, jobs...)
		} else {
			jobs = append(jobs, j)
		}
	}
	if time.Now().After(g.expires) {
		return nil
	}
	if g.dir != nil {
		g.dir.statted.Store(true)
	}
	return jobs
}
