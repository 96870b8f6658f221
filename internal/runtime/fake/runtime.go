package fake

import (
	"errors"
	"fmt"
	"maps"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/moby/sys/signal"

	"github.com/drover-org/drover/internal/runtime"
)

// ErrClosed is returned by the calls of a closed Driver and yielded by its
// pending Waits.
var ErrClosed = errors.New("fake runtime: driver closed")

// Options configure a Runtime.
type Options struct {
	Script Script
	// Preload names images present from the start, as if imported.
	Preload []string
	// Now stamps start and exit times; time.Now by default.
	Now func() time.Time
	// OnExit is called after every exit of a container (scripted, stopped,
	// killed, crashed or destroyed while running), without the Runtime's
	// lock, on the goroutine that caused it (a timer's for ExitAfter). It
	// lets a simulation learn of exits without a goroutine per Wait; it
	// must not block for long.
	OnExit func(id string, es runtime.ExitStatus)
}

// Runtime is one host's fake container runtime: its images and containers
// live as long as it does, whatever happens to the Drivers using it.
type Runtime struct {
	now    func() time.Time
	onExit func(id string, es runtime.ExitStatus)

	mu         sync.Mutex
	script     Script
	images     map[string]runtime.Image // by normalized name
	containers map[string]*container
	starts     map[string]int // Start calls per image name, for FailStarts
	pid        int
	gen        uint64
	calls      map[string]int
}

// container is the record of one container. Only what the driver's
// methods report is kept, so that a Runtime stays small per container.
type container struct {
	id         string
	image      string // normalized
	labels     map[string]string
	stopSignal string
	command    string // for Top
	state      string
	pid        int
	exitCode   int
	started    time.Time
	finished   time.Time
	behavior   Behavior
	// gen tells a timer or a slow Start whether the record is still the
	// one it was made for: an ID may be destroyed and used again.
	gen     uint64
	timer   *time.Timer
	waiters []waiter
	files   map[string]file // written by CopyTo
}

type waiter struct {
	ch chan runtime.ExitStatus
	d  *Driver
}

// New makes a Runtime.
func New(opts Options) *Runtime {
	r := &Runtime{
		now:        opts.Now,
		onExit:     opts.OnExit,
		script:     opts.Script,
		images:     map[string]runtime.Image{},
		containers: map[string]*container{},
		starts:     map[string]int{},
		calls:      map[string]int{},
		pid:        1000,
	}
	if r.now == nil {
		r.now = time.Now
	}
	for _, ref := range opts.Preload {
		name, err := normalizeRef(ref)
		if err != nil {
			name = ref
		}
		r.images[name] = r.newImage(name)
	}
	return r
}

// Driver connects a new Driver to the runtime.
func (r *Runtime) Driver() *Driver { return &Driver{rt: r} }

// SetScript replaces the script. Containers already started keep the
// behaviour they started with.
func (r *Runtime) SetScript(s Script) {
	r.mu.Lock()
	r.script = s
	r.mu.Unlock()
}

// Crash ends a running container now with code, as an outside event would
// (the OOM killer, a bug in the program).
func (r *Runtime) Crash(id string, code int) error {
	r.mu.Lock()
	c, ok := r.containers[id]
	if !ok {
		r.mu.Unlock()
		return fmt.Errorf("container %s: %w", id, runtime.ErrNotFound)
	}
	if !c.alive() {
		r.mu.Unlock()
		return fmt.Errorf("container %s is not running", id)
	}
	es := r.exitLocked(c, code)
	r.mu.Unlock()
	r.notify(id, es)
	return nil
}

// Containers lists every container, as Recover does, without a Driver.
func (r *Runtime) Containers() []runtime.Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]runtime.Status, 0, len(r.containers))
	for _, c := range r.containers {
		out = append(out, c.status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Running counts the running (and paused) containers.
func (r *Runtime) Running() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.containers {
		if c.alive() {
			n++
		}
	}
	return n
}

// Calls says how often a method was called, by its name ("Start",
// "Inspect", ...), over all Drivers.
func (r *Runtime) Calls(method string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[method]
}

func (c *container) alive() bool {
	return c.state == runtime.StateRunning || c.state == runtime.StatePaused
}

func (c *container) status() runtime.Status {
	return runtime.Status{
		ID: c.id, Labels: maps.Clone(c.labels), State: c.state, PID: c.pid,
		ExitCode: c.exitCode, StartedAt: c.started, FinishedAt: c.finished,
	}
}

// exitLocked ends a running container and hands its exit to the waiters;
// the caller passes the returned status to notify once it has unlocked.
func (r *Runtime) exitLocked(c *container, code int) runtime.ExitStatus {
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	c.state = runtime.StateStopped
	c.pid = 0
	c.exitCode = code
	c.finished = r.now()
	es := runtime.ExitStatus{Code: code, ExitedAt: c.finished}
	for _, w := range c.waiters {
		w.ch <- es
		close(w.ch)
	}
	c.waiters = nil
	return es
}

func (r *Runtime) notify(id string, es runtime.ExitStatus) {
	if r.onExit != nil {
		r.onExit(id, es)
	}
}

// scriptedExit is the ExitAfter timer's end of a container.
func (r *Runtime) scriptedExit(id string, gen uint64) {
	r.mu.Lock()
	c, ok := r.containers[id]
	if !ok || c.gen != gen || !c.alive() {
		r.mu.Unlock()
		return
	}
	c.timer = nil
	es := r.exitLocked(c, c.behavior.ExitCode)
	r.mu.Unlock()
	r.notify(id, es)
}

// parseSignal reads a signal by name ("SIGTERM", "TERM") or number.
func parseSignal(s string) (syscall.Signal, error) {
	sig, err := signal.ParseSignal(s)
	if err != nil || sig <= 0 || sig > 64 {
		return 0, fmt.Errorf("signal %q: not a signal name (SIGTERM, TERM) or number", s)
	}
	return sig, nil
}

// ignoredByDefault are the signals whose default action leaves a process
// running.
func ignoredByDefault(sig syscall.Signal) bool {
	switch sig {
	case syscall.SIGCHLD, syscall.SIGCONT, syscall.SIGURG, syscall.SIGWINCH:
		return true
	}
	return false
}

// signalLocked delivers sig to a running container: it exits with 128+sig
// unless it ignores the signal. It reports whether the container exited.
func (r *Runtime) signalLocked(c *container, sig syscall.Signal) (runtime.ExitStatus, bool) {
	if !c.alive() || ignoredByDefault(sig) || (c.behavior.IgnoreStop && sig != syscall.SIGKILL) {
		return runtime.ExitStatus{}, false
	}
	return r.exitLocked(c, 128+int(sig)), true
}
