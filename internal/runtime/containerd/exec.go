package containerd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"

	"github.com/drover-org/drover/internal/runtime"
)

var _ runtime.Execer = (*Driver)(nil)

// runningTask loads a container's task and checks that it runs (or is
// paused, when paused is allowed).
func (d *Driver) runningTask(ctx context.Context, id string, pausedOK bool) (client.Container, client.Task, error) {
	c, err := d.loadContainer(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	task, err := c.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil, nil, fmt.Errorf("container %s is not running", id)
	}
	if err != nil {
		return nil, nil, mapErr(err, "container %s", id)
	}
	st, err := task.Status(ctx)
	if err != nil {
		return nil, nil, mapErr(err, "container %s", id)
	}
	switch st.Status {
	case client.Running:
	case client.Paused, client.Pausing:
		if !pausedOK {
			return nil, nil, fmt.Errorf("container %s is paused", id)
		}
	default:
		return nil, nil, fmt.Errorf("container %s is not running (%s)", id, st.Status)
	}
	return c, task, nil
}

// Exec runs a process in a running container and returns its exit code.
// Its environment, user and working dir default to the container's. The
// context's end kills the process.
func (d *Driver) Exec(ctx context.Context, id string, spec runtime.ExecSpec) (int, error) {
	ctx = d.ctx(ctx)
	if len(spec.Cmd) == 0 {
		return -1, errors.New("exec: no command")
	}
	c, task, err := d.runningTask(ctx, id, false)
	if err != nil {
		return -1, err
	}
	cspec, err := c.Spec(ctx)
	if err != nil {
		return -1, mapErr(err, "container %s", id)
	}
	info, err := c.Info(ctx, client.WithoutRefreshedMetadata)
	if err != nil {
		return -1, mapErr(err, "container %s", id)
	}
	// The process starts as a copy of the container's, changed as asked.
	var opts []oci.SpecOpts
	opts = append(opts, oci.WithProcessArgs(spec.Cmd...), oci.WithEnv(spec.Env))
	if spec.User != "" {
		name, _, _ := strings.Cut(spec.User, ":")
		opts = append(opts, oci.WithUser(spec.User), oci.WithAdditionalGIDs(name))
	}
	if spec.WorkingDir != "" {
		opts = append(opts, oci.WithProcessCwd(spec.WorkingDir))
	}
	cspec.Process.Terminal = spec.Tty
	cspec.Process.ConsoleSize = nil
	if spec.Tty {
		opts = append(opts, withDefaultEnv("TERM=xterm"))
	}
	for _, o := range opts {
		if err := o(ctx, d.client, &info, cspec); err != nil {
			return -1, fmt.Errorf("exec in container %s: %w", id, err)
		}
	}

	stdout, stderr := spec.Stdout, spec.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil || spec.Tty {
		stderr = io.Discard
	}
	// The end of stdin closes the process's stdin: cio closes its fifo,
	// and CloseIO tells the shim.
	var stdin io.Reader
	stdinDone := make(chan struct{})
	if spec.Stdin != nil {
		stdin = &eofNotifier{r: spec.Stdin, done: stdinDone}
	}
	ioOpts := []cio.Opt{cio.WithStreams(stdin, stdout, stderr)}
	if spec.Tty {
		ioOpts = append(ioOpts, cio.WithTerminal)
	}
	execID := "exec-" + randomHex(8)
	proc, err := task.Exec(ctx, execID, cspec.Process, cio.NewCreator(ioOpts...))
	if err != nil {
		return -1, mapErr(err, "exec in container %s", id)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if _, err := proc.Delete(dctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			d.logger.Debug("deleting exec process", "container", id, "exec", execID, "err", err)
		}
	}()
	wctx, cancelWait := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWait()
	exited, err := proc.Wait(wctx)
	if err != nil {
		return -1, mapErr(err, "exec in container %s", id)
	}
	if err := proc.Start(ctx); err != nil {
		return -1, fmt.Errorf("exec in container %s: starting %q: %w", id, spec.Cmd[0], err)
	}

	if spec.Stdin != nil {
		go func() {
			select {
			case <-stdinDone:
				if err := proc.CloseIO(wctx, client.WithStdinCloser); err != nil && !errdefs.IsNotFound(err) {
					d.logger.Debug("closing exec stdin", "container", id, "err", err)
				}
			case <-wctx.Done():
			}
		}()
	}
	if spec.Tty && spec.Resize != nil {
		go func() {
			for {
				select {
				case sz, ok := <-spec.Resize:
					if !ok {
						return
					}
					if err := proc.Resize(wctx, uint32(sz.Width), uint32(sz.Height)); err != nil {
						d.logger.Debug("resizing exec terminal", "container", id, "err", err)
					}
				case <-wctx.Done():
					return
				}
			}
		}()
	}

	var es client.ExitStatus
	select {
	case es = <-exited:
	case <-ctx.Done():
		kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), killTimeout)
		defer cancel()
		_ = proc.Kill(kctx, syscall.SIGKILL)
		select {
		case <-exited:
		case <-kctx.Done():
		}
		return -1, fmt.Errorf("exec in container %s: %w", id, ctx.Err())
	}
	// All output is copied before the code is returned.
	waitIO(proc.IO(), 10*time.Second)
	code, _, err := es.Result()
	if err != nil {
		return -1, fmt.Errorf("exec in container %s: %w", id, err)
	}
	return int(code), nil
}

// waitIO waits, up to max, for a process's output to be copied: a child
// that keeps the pipes open after the process ends would otherwise hold us.
func waitIO(pio cio.IO, max time.Duration) {
	if pio == nil {
		return
	}
	done := make(chan struct{})
	go func() { pio.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(max):
		pio.Cancel()
	}
}

// eofNotifier closes done when its reader ends.
type eofNotifier struct {
	r    io.Reader
	done chan struct{}
	once sync.Once
}

func (e *eofNotifier) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil {
		e.once.Do(func() { close(e.done) })
	}
	return n, err
}
