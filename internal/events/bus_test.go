package events

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
)

func TestBusHistoryAndFollow(t *testing.T) {
	b := New(3)
	for i := 0; i < 5; i++ {
		b.Publish(api.Event{ID: fmt.Sprint(i), Stack: "a"})
	}
	b.Publish(api.Event{ID: "other", Stack: "b"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	past, ch := b.Subscribe(ctx, func(e api.Event) bool { return e.Stack == "a" })
	if len(past) != 2 || past[0].ID != "3" || past[1].ID != "4" {
		t.Fatalf("history %v, want events 3 and 4 of the last three", past)
	}
	b.Publish(api.Event{ID: "x", Stack: "b"})
	b.Publish(api.Event{ID: "5", Stack: "a"})
	select {
	case e := <-ch:
		if e.ID != "5" {
			t.Fatalf("got %v, want event 5", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event delivered")
	}
	cancel()
	for range ch {
	}
}

// TestBusHistoryLimit checks that the history is the last limit events
// whatever the number published, across the amortized trims.
func TestBusHistoryLimit(t *testing.T) {
	const limit = 4
	b := New(limit)
	for n := 1; n <= 3*limit+1; n++ {
		b.Publish(api.Event{ID: fmt.Sprint(n)})
		past, _ := b.Subscribe(t.Context(), func(api.Event) bool { return true })
		want := min(n, limit)
		if len(past) != want || past[len(past)-1].ID != fmt.Sprint(n) || past[0].ID != fmt.Sprint(n-want+1) {
			t.Fatalf("after %d events the history is %v, want the last %d", n, past, want)
		}
	}
}

func BenchmarkPublishFullHistory(b *testing.B) {
	bus := New(10000)
	for i := 0; i < 10000; i++ {
		bus.Publish(api.Event{ID: "warm"})
	}
	b.ReportAllocs()
	for b.Loop() {
		bus.Publish(api.Event{ID: "x", Type: "container", Action: "create"})
	}
}
