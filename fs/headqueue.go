package fs

import (
	"context"
	"sync"
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
