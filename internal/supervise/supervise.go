package supervise

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// How the supervisor backs off between restarts and watches an adopted
// daemon; DefaultStartTimeout bounds a start when Spec leaves it zero.
const (
	restartBackoff      = 500 * time.Millisecond
	maxBackoff          = 30 * time.Second
	adoptedPoll         = time.Second
	DefaultStartTimeout = 30 * time.Second
)

// Spec says how to run one daemon.
type Spec struct {
	// Name is the daemon's name in logs and file names (NAME.pid, NAME.log).
	Name string
	// Dir holds its pid, log and lock files; it is created.
	Dir string
	// Binary is the program: a path, or a name looked up on PATH.
	Binary string
	// Missing is the advice given when Binary cannot be found.
	Missing string
	// Args are its arguments. Identity must be one of them: it tells our
	// copy from another process of the same program (a recycled pid).
	Args     []string
	Identity string
	// Prepare runs before each start (write a config, remove a stale
	// socket). Optional.
	Prepare func() error
	// Answers reports whether the daemon serves requests.
	Answers func(ctx context.Context) bool
	// StartTimeout bounds how long it may take to answer after a start.
	StartTimeout time.Duration
	Logger       *slog.Logger
}

func (s Spec) pidFile() string { return filepath.Join(s.Dir, s.Name+".pid") }

// LogFile is where the daemon's output goes.
func (s Spec) LogFile() string { return filepath.Join(s.Dir, s.Name+".log") }

// Daemon is a supervised daemon.
type Daemon struct {
	spec Spec

	mu      sync.Mutex
	closed  bool
	stop    chan struct{} // closed by Close: stop supervising
	exited  chan struct{} // closed when the current child exits (nil if adopted)
	pid     int
	stopped chan struct{} // closed when the supervisor loop has returned
}

// Start adopts the copy that already answers, or starts one, and
// supervises it until Close.
func Start(ctx context.Context, spec Spec) (*Daemon, error) {
	if spec.Logger == nil {
		spec.Logger = slog.New(slog.DiscardHandler)
	}
	if spec.StartTimeout == 0 {
		spec.StartTimeout = DefaultStartTimeout
	}
	if err := os.MkdirAll(spec.Dir, 0o711); err != nil {
		return nil, fmt.Errorf("%s dir: %w", spec.Name, err)
	}
	d := &Daemon{spec: spec, stop: make(chan struct{}), stopped: make(chan struct{})}
	if err := d.startOrReuse(ctx); err != nil {
		return nil, err
	}
	go d.supervise()
	return d, nil
}

// Pid is the daemon's process ID (0 when an adopted copy left no pid file).
func (d *Daemon) Pid() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pid
}

// startOrReuse adopts the copy that answers or starts one, under the lock.
func (d *Daemon) startOrReuse(ctx context.Context) error {
	s := d.spec
	lock, err := os.OpenFile(filepath.Join(s.Dir, "start.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("%s start lock: %w", s.Name, err)
	}
	defer lock.Close() // releases the lock
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("%s start lock: %w", s.Name, err)
	}
	if s.Answers(ctx) {
		pid, _ := ReadPid(s.pidFile())
		if pid > 0 && (!Alive(pid) || !runs(pid, s.Binary, s.Identity)) {
			pid = 0 // a stale pid file: watch the daemon's answers instead
		}
		d.mu.Lock()
		d.exited, d.pid = nil, pid
		d.mu.Unlock()
		s.Logger.Info("reusing running "+s.Name, "pid", pid)
		return nil
	}
	return d.spawn(ctx)
}

// spawn starts the daemon in its own session and waits until it answers.
func (d *Daemon) spawn(ctx context.Context) error {
	s := d.spec
	if s.Prepare != nil {
		if err := s.Prepare(); err != nil {
			return err
		}
	}
	bin, err := exec.LookPath(s.Binary)
	if err != nil {
		return fmt.Errorf("%s is not installed (%s): %w", s.Name, s.Missing, err)
	}
	logf, err := os.OpenFile(s.LogFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("%s log: %w", s.Name, err)
	}
	logStart, _ := logf.Seek(0, 2)
	cmd := exec.Command(bin, s.Args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = s.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", s.Name, err)
	}
	logf.Close() // the child has its own copy
	if err := os.WriteFile(s.pidFile(), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		s.Logger.Warn("writing pid file", "daemon", s.Name, "err", err)
	}
	exited := make(chan struct{})
	go func() {
		// Reaps the child whatever happens to us, also after Close.
		_ = cmd.Wait()
		close(exited)
	}()
	d.mu.Lock()
	d.exited, d.pid = exited, cmd.Process.Pid
	d.mu.Unlock()

	start := time.Now()
	deadline := time.NewTimer(s.StartTimeout)
	defer deadline.Stop()
	for {
		if s.Answers(ctx) {
			s.Logger.Info(s.Name+" started", "pid", cmd.Process.Pid, "took", time.Since(start).Round(time.Millisecond))
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited at start (%s); end of %s:\n%s", s.Name, cmd.ProcessState, s.LogFile(), TailFrom(s.LogFile(), logStart, 20))
		case <-deadline.C:
			_ = cmd.Process.Kill()
			return fmt.Errorf("%s did not answer within %s; end of %s:\n%s", s.Name, s.StartTimeout, s.LogFile(), TailFrom(s.LogFile(), logStart, 20))
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			return fmt.Errorf("waiting for %s to start: %w", s.Name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// supervise restarts the daemon with back-off whenever it goes away, until
// Close.
func (d *Daemon) supervise() {
	defer close(d.stopped)
	backoff := restartBackoff
	for {
		if !d.waitGone() {
			return
		}
		d.spec.Logger.Warn(d.spec.Name+" went away; restarting", "backoff", backoff)
		select {
		case <-d.stop:
			return
		case <-time.After(backoff):
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-d.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		// Someone else (a second Drover on the same data dir) may have
		// restarted it already.
		err := d.startOrReuse(ctx)
		cancel()
		if err != nil {
			d.spec.Logger.Error("restarting "+d.spec.Name, "err", err)
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = restartBackoff
	}
}

// waitGone blocks until the daemon is gone (true) or Close (false).
func (d *Daemon) waitGone() bool {
	d.mu.Lock()
	exited, pid := d.exited, d.pid
	d.mu.Unlock()
	if exited != nil {
		select {
		case <-exited:
			return true
		case <-d.stop:
			return false
		}
	}
	// An adopted daemon is not our child: poll it.
	t := time.NewTicker(adoptedPoll)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return false
		case <-t.C:
		}
		if pid > 0 {
			if !Alive(pid) {
				return true
			}
		} else if !d.spec.Answers(context.Background()) {
			return true
		}
	}
}

// Close stops supervising; the daemon keeps running. Closing twice is fine.
func (d *Daemon) Close() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	close(d.stop)
	d.mu.Unlock()
	<-d.stopped
}

// Stop ends the daemon that spec describes (from its pid file): SIGTERM,
// then SIGKILL after grace, and waits for it to exit. No pid file, or no
// such process, is not an error. Supervisors of it must be closed first.
func Stop(spec Spec, grace time.Duration) error {
	pid, err := ReadPid(spec.pidFile())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	if !Alive(pid) || !runs(pid, spec.Binary, spec.Identity) {
		_ = os.Remove(spec.pidFile())
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stopping %s %d: %w", spec.Name, pid, err)
	}
	if !waitDead(pid, grace) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		if !waitDead(pid, 5*time.Second) {
			return fmt.Errorf("%s %d did not exit after SIGKILL", spec.Name, pid)
		}
	}
	_ = os.Remove(spec.pidFile())
	return nil
}

func waitDead(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !Alive(pid) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return !Alive(pid)
}

// Alive reports whether pid is a live process (zombies count as dead: a
// child that exited waits to be reaped by its supervisor).
func Alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && errors.Is(err, syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z' && stat[i+2] != 'X'
	}
	return true
}

// runs checks that pid runs binary with identity among its arguments, so a
// recycled pid is never taken for the daemon.
func runs(pid int, binary, identity string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if len(args) == 0 || filepath.Base(args[0]) != filepath.Base(binary) {
		return false
	}
	for _, a := range args[1:] {
		if a == identity {
			return true
		}
	}
	return false
}

// ReadPid reads a pid file.
func ReadPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s: bad content %q", path, b)
	}
	return pid, nil
}

// TailFrom returns the last n lines written to path since offset.
func TailFrom(path string, offset int64, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	if offset > 0 && offset <= int64(len(b)) {
		b = b[offset:]
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
