package events

import (
	"context"
	"sync"

	"github.com/drover-org/drover/api"
)

// Bus keeps the last events and hands new ones to subscribers. A slow
// subscriber loses events rather than slowing the server down.
type Bus struct {
	mu      sync.Mutex
	history []api.Event
	limit   int
	subs    map[chan api.Event]struct{}
}

// New makes a bus that remembers the last limit events.
func New(limit int) *Bus {
	return &Bus{limit: limit, subs: map[chan api.Event]struct{}{}}
}

// Publish records an event and sends it to every subscriber.
func (b *Bus) Publish(e api.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.history = append(b.history, e)
	// Trim only once the history holds twice the limit: trimming on every
	// event copied the whole history per event, which made the first
	// reconcile pass of a 100,000-task deploy take minutes.
	if len(b.history) >= 2*b.limit {
		b.history = append([]api.Event(nil), b.history[len(b.history)-b.limit:]...)
	}
	for ch := range b.subs {
		select {
		case ch <- e:
		default:
		}
	}
}

// Subscribe returns the remembered events that match and a channel of the
// new ones, until ctx ends.
func (b *Bus) Subscribe(ctx context.Context, match func(api.Event) bool) ([]api.Event, <-chan api.Event) {
	ch := make(chan api.Event, 256)
	out := make(chan api.Event, 256)
	b.mu.Lock()
	var past []api.Event
	for _, e := range b.history[max(0, len(b.history)-b.limit):] {
		if match(e) {
			past = append(past, e)
		}
	}
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	go func() {
		defer close(out)
		defer func() {
			b.mu.Lock()
			delete(b.subs, ch)
			b.mu.Unlock()
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case e := <-ch:
				if match(e) {
					select {
					case out <- e:
					case <-ctx.Done():
						return
					}
				}
			}
		}
	}()
	return past, out
}
