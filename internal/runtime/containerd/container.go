package containerd

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/drover-org/drover/internal/runtime"
)

// Labels the driver puts on its containers.
const (
	// LabelManaged marks containers made by Drover.
	LabelManaged = "drover.managed"
	// LabelStartedAt records when the task was started (RFC 3339): the
	// containerd task API reports no start time.
	LabelStartedAt = "drover.started-at"
)

// Bounds on the parts of Stop and Destroy that wait for a process.
const (
	killTimeout    = 30 * time.Second
	cleanupTimeout = 30 * time.Second
)

// Start creates the container from its image and starts its task.
func (d *Driver) Start(ctx context.Context, spec runtime.ContainerSpec) (runtime.Status, error) {
	ctx = d.ctx(ctx)
	if spec.ID == "" {
		return runtime.Status{}, errors.New("container spec without an ID")
	}
	if _, err := d.client.LoadContainer(ctx, spec.ID); err == nil {
		return runtime.Status{}, fmt.Errorf("container %s: %w", spec.ID, errdefs.ErrAlreadyExists)
	} else if !errdefs.IsNotFound(err) {
		return runtime.Status{}, fmt.Errorf("container %s: %w", spec.ID, err)
	}
	img, err := d.ensureImage(ctx, spec.Image)
	if err != nil {
		return runtime.Status{}, err
	}
	ic, err := readImageConfig(ctx, img)
	if err != nil {
		return runtime.Status{}, err
	}
	sopts, err := specOpts(ic, spec)
	if err != nil {
		return runtime.Status{}, fmt.Errorf("container %s: %w", spec.ID, err)
	}
	stopSignal := spec.StopSignal
	if stopSignal == "" {
		stopSignal = ic.StopSignal
	}
	if stopSignal != "" {
		if _, err := parseSignal(stopSignal); err != nil {
			return runtime.Status{}, fmt.Errorf("container %s: %w", spec.ID, err)
		}
	}
	ioc, err := d.logIO(spec)
	if err != nil {
		return runtime.Status{}, fmt.Errorf("container %s: %w", spec.ID, err)
	}

	labels := maps.Clone(spec.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[LabelManaged] = "true"
	if stopSignal != "" {
		labels[client.StopSignalLabel] = stopSignal
	}
	rt, err := d.runtimeFor(spec.Runtime)
	if err != nil {
		return runtime.Status{}, err
	}
	if rt.specVersion != "" {
		sopts = append(sopts, withOCIVersion(rt.specVersion))
	}
	// A failed NewContainer leaves nothing behind: the snapshot is made
	// under a lease that ends with the call.
	container, err := d.client.NewContainer(ctx, spec.ID,
		client.WithImage(img),
		client.WithSnapshotter(d.cfg.Snapshotter),
		client.WithNewSnapshot(spec.ID, img),
		client.WithRuntime(rt.typ, rt.opts),
		client.WithNewSpec(sopts...),
		client.WithContainerLabels(labels),
	)
	if err != nil {
		return runtime.Status{}, fmt.Errorf("creating container %s: %w", spec.ID, err)
	}

	task, err := container.NewTask(ctx, ioc, withTaskOptions(rt.opts))
	if err != nil {
		d.deleteContainer(ctx, container)
		return runtime.Status{}, fmt.Errorf("creating task of container %s: %w", spec.ID, err)
	}
	if err := task.Start(ctx); err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if _, derr := task.Delete(cctx, client.WithProcessKill); derr != nil && !errdefs.IsNotFound(derr) {
			d.logger.Warn("deleting task after failed start", "container", spec.ID, "err", derr)
		}
		d.deleteContainer(ctx, container)
		return runtime.Status{}, fmt.Errorf("starting container %s: %w", spec.ID, err)
	}
	startedAt := time.Now().UTC()
	labels[LabelStartedAt] = startedAt.Format(time.RFC3339Nano)
	if _, err := container.SetLabels(ctx, map[string]string{LabelStartedAt: labels[LabelStartedAt]}); err != nil {
		d.logger.Warn("recording start time", "container", spec.ID, "err", err)
	}
	return runtime.Status{
		ID:        spec.ID,
		Labels:    labels,
		State:     runtime.StateRunning,
		PID:       int(task.Pid()),
		StartedAt: startedAt,
	}, nil
}

// withTaskOptions gives the shim the container's runtime options (runc's
// root dir, the OCI runtime binary). The container record carries the same
// options; they are repeated on the task because the 1.6 shim reads the
// task's.
func withTaskOptions(opts any) client.NewTaskOpts {
	return func(_ context.Context, _ *client.Client, ti *client.TaskInfo) error {
		if opts != nil {
			ti.Options = opts
		}
		return nil
	}
}

// deleteContainer removes a container whose start failed, with its
// snapshot, so that no record is left behind.
func (d *Driver) deleteContainer(ctx context.Context, c client.Container) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := c.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		d.logger.Warn("deleting container after failed start", "container", c.ID(), "err", err)
	}
}

// logIO sends the container's stdout and stderr to spec.LogPath: through the
// logger binary when configured, else raw. The shim writes the log, so it
// outlives the agent.
func (d *Driver) logIO(spec runtime.ContainerSpec) (cio.Creator, error) {
	tty, stdinOpen := spec.Settings.Tty, spec.Settings.StdinOpen
	if spec.LogPath == "" {
		if tty {
			return nil, errors.New("tty: true needs a log path for the terminal's output")
		}
		return cio.NullIO, nil
	}
	if !filepath.IsAbs(spec.LogPath) {
		return nil, fmt.Errorf("log path %q: must be absolute", spec.LogPath)
	}
	if err := os.MkdirAll(filepath.Dir(spec.LogPath), 0o755); err != nil {
		return nil, fmt.Errorf("log dir: %w", err)
	}
	if d.cfg.LoggerBinary != "" {
		// The runc shim runs the binary with each query key and value of
		// the URI as arguments: LoggerBinary shim-logger <LogPath>.
		creator := cio.BinaryIO(d.cfg.LoggerBinary, map[string]string{"shim-logger": spec.LogPath})
		if tty {
			// The shim copies the terminal to the logger binary. A
			// terminal never reaches end of input, so stdin_open needs
			// nothing more.
			return withTerminal(creator), nil
		}
		if stdinOpen {
			// The shim gives binary-logged processes no stdin.
			d.logger.Warn("stdin_open without tty is not supported with the logger binary: stdin is /dev/null", "container", spec.ID)
		}
		return creator, nil
	}
	if tty {
		// The shim writes a terminal only to a fifo or a logger binary.
		return nil, errors.New("tty: true needs the driver's logger binary (Config.LoggerBinary)")
	}
	return rawLogFile(spec.LogPath, stdinOpen)
}

// withTerminal marks the IO of a creator as a terminal's.
func withTerminal(c cio.Creator) cio.Creator {
	return func(id string) (cio.IO, error) {
		io, err := c(id)
		if err != nil {
			return nil, err
		}
		return terminalIO{io}, nil
	}
}

type terminalIO struct{ cio.IO }

func (t terminalIO) Config() cio.Config {
	cfg := t.IO.Config()
	cfg.Terminal = true
	return cfg
}

// rawLogFile appends the container's stdout and stderr to path, written by
// the shim.
//
// It does not use cio.LogFile: for a file:// URI the runc shim (1.6 and
// later) shares one descriptor between both streams and closes it as soon as
// the first of them ends, so the other stream's last output is lost (one
// start in ten here). Plain paths take the shim's other route: it opens a
// path that is not a fifo for appending, once per distinct path string. So
// stderr gets the same file spelled differently ("dir/./name"), and each
// stream has, and closes, its own descriptor.
//
// With stdinOpen the container's stdin is a fifo beside the log that nobody
// writes to: it stays open and empty, as `docker run -i` without input.
func rawLogFile(path string, stdinOpen bool) (cio.Creator, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	f.Close()
	cfg := cio.Config{
		Stdout: path,
		Stderr: filepath.Dir(path) + "/./" + filepath.Base(path),
	}
	if stdinOpen {
		cfg.Stdin = path + ".stdin"
		if err := unix.Mkfifo(cfg.Stdin, 0o600); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("stdin fifo: %w", err)
		}
	}
	return func(string) (cio.IO, error) { return &shimWrittenIO{cfg: cfg}, nil }, nil
}

// shimWrittenIO is IO that the shim does all of: nothing to copy or close
// on our side.
type shimWrittenIO struct{ cfg cio.Config }

func (s *shimWrittenIO) Config() cio.Config { return s.cfg }
func (s *shimWrittenIO) Cancel()            {}
func (s *shimWrittenIO) Wait()              {}
func (s *shimWrittenIO) Close() error       { return nil }

// loadContainer finds a container, runtime.ErrNotFound if there is none.
func (d *Driver) loadContainer(ctx context.Context, id string) (client.Container, error) {
	c, err := d.client.LoadContainer(ctx, id)
	if err != nil {
		return nil, mapErr(err, "container %s", id)
	}
	return c, nil
}

// Wait returns a channel that yields once when the container exits. It
// works for any container, also one started before a restart of the agent.
// A lost connection to containerd (it restarted) is retried.
func (d *Driver) Wait(ctx context.Context, id string) (<-chan runtime.ExitStatus, error) {
	ctx = d.ctx(ctx)
	c, err := d.loadContainer(ctx, id)
	if err != nil {
		return nil, err
	}
	task, err := c.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		// A container without a task has no process to wait for: it
		// never started, or containerd lost the task (host reboot).
		out := make(chan runtime.ExitStatus, 1)
		out <- runtime.ExitStatus{Code: client.UnknownExitStatus, Err: fmt.Errorf("container %s has no task", id)}
		close(out)
		return out, nil
	}
	if err != nil {
		return nil, mapErr(err, "container %s", id)
	}
	ch, err := task.Wait(ctx)
	if err != nil {
		return nil, mapErr(err, "waiting for container %s", id)
	}
	out := make(chan runtime.ExitStatus, 1)
	go func() {
		defer close(out)
		out <- d.waitLoop(ctx, c, ch)
	}()
	return out, nil
}

func (d *Driver) waitLoop(ctx context.Context, c client.Container, ch <-chan client.ExitStatus) runtime.ExitStatus {
	backoff := 100 * time.Millisecond
	for {
		es := <-ch
		code, at, err := es.Result()
		switch {
		case err == nil:
			return runtime.ExitStatus{Code: int(code), ExitedAt: at}
		case ctx.Err() != nil:
			return runtime.ExitStatus{Code: client.UnknownExitStatus, Err: ctx.Err()}
		case d.isClosed():
			return runtime.ExitStatus{Code: client.UnknownExitStatus, Err: errors.New("runtime driver closed")}
		}
		// The wait broke off, most likely because containerd restarted
		// (the errors of a dropped connection come in several kinds). Wait
		// again: a task that exited meanwhile answers at once.
		d.logger.Debug("wait broke off; waiting again", "container", c.ID(), "err", err)
		for {
			select {
			case <-ctx.Done():
				return runtime.ExitStatus{Code: client.UnknownExitStatus, Err: ctx.Err()}
			case <-d.closed:
				return runtime.ExitStatus{Code: client.UnknownExitStatus, Err: errors.New("runtime driver closed")}
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			task, err := c.Task(ctx, nil)
			if errdefs.IsNotFound(err) {
				return runtime.ExitStatus{Code: client.UnknownExitStatus, Err: fmt.Errorf("container %s: its task is gone: %w", c.ID(), err)}
			}
			if err == nil {
				ch, err = task.Wait(ctx)
			}
			if err == nil {
				break
			}
		}
	}
}

func (d *Driver) isClosed() bool {
	select {
	case <-d.closed:
		return true
	default:
		return false
	}
}

// Stop sends signal ("" means the container's stop signal, else SIGTERM),
// waits up to grace for the container to exit, then kills it. Stopping a
// container that is not running is fine.
func (d *Driver) Stop(ctx context.Context, id string, sig string, grace time.Duration) error {
	ctx = d.ctx(ctx)
	c, err := d.loadContainer(ctx, id)
	if err != nil {
		return err
	}
	var signal syscall.Signal
	if sig != "" {
		if signal, err = parseSignal(sig); err != nil {
			return err
		}
	} else if signal, err = client.GetStopSignal(ctx, c, syscall.SIGTERM); err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}
	task, err := c.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return mapErr(err, "container %s", id)
	}
	st, err := task.Status(ctx)
	if err != nil {
		return mapErr(err, "container %s", id)
	}
	if st.Status == client.Stopped {
		return nil
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	exited, err := task.Wait(wctx)
	if err != nil {
		return mapErr(err, "container %s", id)
	}
	if signal != syscall.SIGKILL {
		if err := task.Kill(ctx, signal); err != nil {
			if errdefs.IsNotFound(err) {
				return nil // exited meanwhile
			}
			return fmt.Errorf("signalling container %s: %w", id, err)
		}
		if grace > 0 {
			t := time.NewTimer(grace)
			defer t.Stop()
			select {
			case <-exited:
				return nil
			case <-t.C:
			case <-ctx.Done():
				return fmt.Errorf("stopping container %s: %w", id, ctx.Err())
			}
		}
		d.logger.Debug("container outlived its grace period; killing", "container", id, "grace", grace)
	}
	if err := task.Kill(ctx, syscall.SIGKILL, client.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("killing container %s: %w", id, err)
	}
	t := time.NewTimer(killTimeout)
	defer t.Stop()
	select {
	case <-exited:
		return nil
	case <-t.C:
		return fmt.Errorf("container %s did not exit %s after SIGKILL", id, killTimeout)
	case <-ctx.Done():
		return fmt.Errorf("stopping container %s: %w", id, ctx.Err())
	}
}

// Destroy kills the container if needed and removes its task, record and
// root filesystem. A missing container is fine.
func (d *Driver) Destroy(ctx context.Context, id string) error {
	ctx = d.ctx(ctx)
	c, err := d.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}
	task, err := c.Task(ctx, nil)
	switch {
	case err == nil:
		if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("deleting task of container %s: %w", id, err)
		}
	case !errdefs.IsNotFound(err):
		return fmt.Errorf("container %s: %w", id, err)
	}
	if err := c.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("deleting container %s: %w", id, err)
	}
	return nil
}

// Inspect reports one container; runtime.ErrNotFound if unknown.
func (d *Driver) Inspect(ctx context.Context, id string) (runtime.Status, error) {
	ctx = d.ctx(ctx)
	c, err := d.loadContainer(ctx, id)
	if err != nil {
		return runtime.Status{}, err
	}
	st, err := d.status(ctx, c)
	if err != nil {
		return runtime.Status{}, mapErr(err, "container %s", id)
	}
	return st, nil
}

// Recover lists every container of the namespace with its state, so that a
// restarted agent can adopt them.
func (d *Driver) Recover(ctx context.Context) ([]runtime.Status, error) {
	ctx = d.ctx(ctx)
	cs, err := d.client.Containers(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing containers: %w", err)
	}
	out := make([]runtime.Status, 0, len(cs))
	for _, c := range cs {
		st, err := d.status(ctx, c)
		if errdefs.IsNotFound(err) {
			continue // destroyed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("container %s: %w", c.ID(), err)
		}
		out = append(out, st)
	}
	return out, nil
}

// status reads a container's record and its task's state.
func (d *Driver) status(ctx context.Context, c client.Container) (runtime.Status, error) {
	info, err := c.Info(ctx, client.WithoutRefreshedMetadata)
	if err != nil {
		return runtime.Status{}, err
	}
	st := runtime.Status{ID: c.ID(), Labels: info.Labels, State: runtime.StateUnknown}
	if st.Labels == nil {
		st.Labels = map[string]string{}
	}
	startedLabel, started := info.Labels[LabelStartedAt]
	if started {
		st.StartedAt, _ = time.Parse(time.RFC3339Nano, startedLabel)
	}
	task, err := c.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		if started {
			// Started once, but its task is gone: containerd lost it
			// (host reboot) and with it the exit code. Docker reports 255.
			st.State, st.ExitCode = runtime.StateStopped, client.UnknownExitStatus
		} else {
			st.State = runtime.StateCreated
		}
		return st, nil
	}
	if err != nil {
		return runtime.Status{}, err
	}
	ts, err := task.Status(ctx)
	if err != nil {
		return runtime.Status{}, err
	}
	switch ts.Status {
	case client.Running:
		st.State = runtime.StateRunning
	case client.Created:
		st.State = runtime.StateCreated
	case client.Paused, client.Pausing:
		st.State = runtime.StatePaused
	case client.Stopped:
		st.State = runtime.StateStopped
		st.ExitCode = int(ts.ExitStatus)
		st.FinishedAt = ts.ExitTime
	}
	if st.State != runtime.StateStopped {
		st.PID = int(task.Pid())
	}
	return st, nil
}
