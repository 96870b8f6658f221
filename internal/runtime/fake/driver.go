package fake

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/drover-org/drover/internal/runtime"
)

// Driver is one connection to a Runtime, as the containerd driver is a
// connection to containerd: closing it leaves the containers running.
type Driver struct {
	rt     *Runtime
	closed atomic.Bool
}

var (
	_ runtime.Driver         = (*Driver)(nil)
	_ runtime.ImageStore     = (*Driver)(nil)
	_ runtime.Execer         = (*Driver)(nil)
	_ runtime.Operator       = (*Driver)(nil)
	_ runtime.ImageInspector = (*Driver)(nil)
)

// Close ends the connection: pending Waits through it yield ErrClosed and
// its further calls fail. Containers keep running.
func (d *Driver) Close() error {
	if d.closed.Swap(true) {
		return nil
	}
	r := d.rt
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.containers {
		kept := c.waiters[:0]
		for _, w := range c.waiters {
			if w.d != d {
				kept = append(kept, w)
				continue
			}
			w.ch <- runtime.ExitStatus{Code: -1, Err: ErrClosed}
			close(w.ch)
		}
		c.waiters = kept
	}
	return nil
}

// enter counts a call and refuses it on a closed Driver; it returns with
// the Runtime locked on success.
func (d *Driver) enter(method string) error {
	if d.closed.Load() {
		return ErrClosed
	}
	d.rt.mu.Lock()
	d.rt.calls[method]++
	return nil
}

func notFound(id string) error { return fmt.Errorf("container %s: %w", id, runtime.ErrNotFound) }

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Start creates and starts a container, pulling its image first when it
// is missing (as containerd's driver does), then waiting the script's
// start latency.
func (d *Driver) Start(ctx context.Context, spec runtime.ContainerSpec) (runtime.Status, error) {
	if spec.ID == "" {
		return runtime.Status{}, errors.New("container spec without an ID")
	}
	if err := d.enter("Start"); err != nil {
		return runtime.Status{}, err
	}
	r := d.rt
	_, exists := r.containers[spec.ID]
	r.mu.Unlock()
	if exists {
		return runtime.Status{}, fmt.Errorf("container %s already exists", spec.ID)
	}
	name, err := d.ensure(ctx, spec.Image)
	if err != nil {
		return runtime.Status{}, err
	}
	if spec.StopSignal != "" {
		if _, err := parseSignal(spec.StopSignal); err != nil {
			return runtime.Status{}, fmt.Errorf("container %s: stop %w", spec.ID, err)
		}
	}

	r.mu.Lock()
	if _, ok := r.containers[spec.ID]; ok {
		r.mu.Unlock()
		return runtime.Status{}, fmt.Errorf("container %s already exists", spec.ID)
	}
	b := r.script.behavior(spec.Image, name)
	r.starts[name]++
	if b.StartError != "" && (b.FailStarts == 0 || r.starts[name] <= b.FailStarts) {
		r.mu.Unlock()
		return runtime.Status{}, fmt.Errorf("starting container %s: %s", spec.ID, b.StartError)
	}
	r.gen++
	c := &container{
		id: spec.ID, image: name, labels: maps.Clone(spec.Labels), stopSignal: spec.StopSignal,
		command: strings.Join(append(append([]string(nil), spec.Entrypoint...), spec.Command...), " "),
		state:   runtime.StateCreated, behavior: b, gen: r.gen,
	}
	r.containers[spec.ID] = c
	r.mu.Unlock()

	if err := sleep(ctx, b.StartLatency); err != nil {
		// A start cut short leaves nothing behind, as a failed one does;
		// whoever waits on it learns that it never ran.
		err = fmt.Errorf("starting container %s: %w", spec.ID, err)
		r.mu.Lock()
		if cur := r.containers[spec.ID]; cur == c {
			delete(r.containers, spec.ID)
			for _, w := range c.waiters {
				w.ch <- runtime.ExitStatus{Code: -1, Err: err}
				close(w.ch)
			}
			c.waiters = nil
		}
		r.mu.Unlock()
		return runtime.Status{}, err
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if cur := r.containers[spec.ID]; cur != c {
		return runtime.Status{}, fmt.Errorf("starting container %s: destroyed while it started", spec.ID)
	}
	r.pid++
	c.pid = r.pid
	c.state = runtime.StateRunning
	c.started = r.now()
	if b.ExitAfter > 0 {
		id, gen := c.id, c.gen
		c.timer = time.AfterFunc(b.ExitAfter, func() { r.scriptedExit(id, gen) })
	}
	return c.status(), nil
}

// Wait returns a channel that yields once when the container exits: at
// once for one that already did.
func (d *Driver) Wait(ctx context.Context, id string) (<-chan runtime.ExitStatus, error) {
	if err := d.enter("Wait"); err != nil {
		return nil, err
	}
	r := d.rt
	defer r.mu.Unlock()
	c, ok := r.containers[id]
	if !ok {
		return nil, notFound(id)
	}
	ch := make(chan runtime.ExitStatus, 1)
	if c.state == runtime.StateStopped {
		ch <- runtime.ExitStatus{Code: c.exitCode, ExitedAt: c.finished}
		close(ch)
		return ch, nil
	}
	c.waiters = append(c.waiters, waiter{ch: ch, d: d})
	return ch, nil
}

// Stop sends signal ("" means the spec's stop signal, else SIGTERM) and,
// for a container that ignores it, kills it after grace.
func (d *Driver) Stop(ctx context.Context, id string, sig string, grace time.Duration) error {
	if err := d.enter("Stop"); err != nil {
		return err
	}
	r := d.rt
	c, ok := r.containers[id]
	if !ok {
		r.mu.Unlock()
		return notFound(id)
	}
	if sig == "" {
		sig = c.stopSignal
	}
	signal := syscall.SIGTERM
	if sig != "" {
		var err error
		if signal, err = parseSignal(sig); err != nil {
			r.mu.Unlock()
			return fmt.Errorf("container %s: stop %w", id, err)
		}
	}
	if !c.alive() {
		r.mu.Unlock()
		return nil
	}
	if es, exited := r.signalLocked(c, signal); exited {
		r.mu.Unlock()
		r.notify(id, es)
		return nil
	}
	exited := make(chan runtime.ExitStatus, 1)
	c.waiters = append(c.waiters, waiter{ch: exited, d: d})
	gen := c.gen
	r.mu.Unlock()

	if grace > 0 {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case es := <-exited:
			return es.Err // nil, or ErrClosed when this driver closed meanwhile
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("stopping container %s: %w", id, ctx.Err())
		}
	}
	r.mu.Lock()
	c, ok = r.containers[id]
	if !ok || c.gen != gen || !c.alive() {
		r.mu.Unlock()
		return nil
	}
	es := r.exitLocked(c, 128+int(syscall.SIGKILL))
	r.mu.Unlock()
	r.notify(id, es)
	return nil
}

// Destroy kills the container if it runs and forgets it; a missing one is
// fine.
func (d *Driver) Destroy(ctx context.Context, id string) error {
	if err := d.enter("Destroy"); err != nil {
		return err
	}
	r := d.rt
	c, ok := r.containers[id]
	if !ok {
		r.mu.Unlock()
		return nil
	}
	var es runtime.ExitStatus
	killed := c.alive()
	if killed {
		es = r.exitLocked(c, 128+int(syscall.SIGKILL))
	}
	// Waiters of a container that never ran (destroyed while starting)
	// learn that it is gone.
	for _, w := range c.waiters {
		w.ch <- runtime.ExitStatus{Code: -1, Err: fmt.Errorf("container %s was destroyed", id)}
		close(w.ch)
	}
	delete(r.containers, id)
	r.mu.Unlock()
	if killed {
		r.notify(id, es)
	}
	return nil
}

// Inspect reports one container.
func (d *Driver) Inspect(ctx context.Context, id string) (runtime.Status, error) {
	if err := d.enter("Inspect"); err != nil {
		return runtime.Status{}, err
	}
	defer d.rt.mu.Unlock()
	c, ok := d.rt.containers[id]
	if !ok {
		return runtime.Status{}, notFound(id)
	}
	return c.status(), nil
}

// Recover lists every container of the runtime, by ID.
func (d *Driver) Recover(ctx context.Context) ([]runtime.Status, error) {
	if err := d.enter("Recover"); err != nil {
		return nil, err
	}
	r := d.rt
	out := make([]runtime.Status, 0, len(r.containers))
	for _, c := range r.containers {
		out = append(out, c.status())
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
