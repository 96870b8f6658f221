package server

import (
	"testing"
	"time"

	"github.com/drover-org/drover/api"
)

func TestProjectEventsShowNodes(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		e    api.Event
		want bool
	}{
		{api.Event{Type: "container", Stack: "a", Time: now}, true},
		{api.Event{Type: "container", Stack: "b", Time: now}, false},
		{api.Event{Type: "node", Action: "down", Time: now}, true},
		{api.Event{Type: "node", Action: "down", Time: now.Add(-time.Hour)}, false},
	} {
		if got := eventMatches(c.e, "a", now.Add(-time.Minute)); got != c.want {
			t.Errorf("%+v: %v, want %v", c.e, got, c.want)
		}
	}
}
