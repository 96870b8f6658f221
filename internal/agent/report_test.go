package agent

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/drover-org/drover/api"
)

// A running report that comes after the exit (a health probe racing it)
// is dropped; repeated reports are sent once.
func TestReportKeepsExitFinal(t *testing.T) {
	var mu sync.Mutex
	var states []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var st api.TaskStatus
		_ = decodeJSON(r, &st)
		mu.Lock()
		states = append(states, st.State)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	c, err := api.NewClient("http://" + srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{cfg: Config{Server: c}, log: slog.New(slog.DiscardHandler), reported: map[string]api.TaskStatus{}}
	tk := api.Task{ID: "t1", Stack: "s", Service: "web"}
	ctx := context.Background()
	a.report(ctx, tk, api.TaskStatus{State: api.StateRunning, PID: 7})
	a.report(ctx, tk, api.TaskStatus{State: api.StateRunning, PID: 7})
	a.report(ctx, tk, api.TaskStatus{State: api.StateExited, ExitCode: 1})
	a.report(ctx, tk, api.TaskStatus{State: api.StateRunning, PID: 7, Health: api.HealthHealthy})
	mu.Lock()
	defer mu.Unlock()
	if len(states) != 2 || states[0] != api.StateRunning || states[1] != api.StateExited {
		t.Fatalf("reports sent: %v; want [running exited]", states)
	}
}

func decodeJSON(r *http.Request, v any) error {
	return json.NewDecoder(r.Body).Decode(v)
}
