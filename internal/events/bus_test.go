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
