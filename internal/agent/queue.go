package agent

import (
	"fmt"
	"sync"
)

// queue is a set of keys to reconcile: a key is never handed to two workers
// at once, and a key added while it is being worked on is handed out again
// once that work is done.
type queue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	pending []string
	queued  map[string]bool
	active  map[string]bool
	dirty   map[string]bool
	closed  bool
}

func newQueue() *queue {
	q := &queue{queued: map[string]bool{}, active: map[string]bool{}, dirty: map[string]bool{}}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *queue) add(k string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.closed || q.queued[k]:
	case q.active[k]:
		q.dirty[k] = true
	default:
		q.queued[k] = true
		q.pending = append(q.pending, k)
		q.cond.Signal()
	}
}

func (q *queue) get() (string, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.pending) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return "", false
	}
	k := q.pending[0]
	q.pending = q.pending[1:]
	delete(q.queued, k)
	q.active[k] = true
	return k, true
}

func (q *queue) done(k string) {
	q.mu.Lock()
	delete(q.active, k)
	again := q.dirty[k]
	delete(q.dirty, k)
	q.mu.Unlock()
	if again {
		q.add(k)
	}
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}

func stack(p any) string { return fmt.Sprint(p) }
