package containerd

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

	"github.com/containerd/containerd/v2/client"
)

// Files of our own containerd, under DataDir/containerd.
const (
	daemonDir      = "containerd"
	configFile     = "config.toml"
	socketFile     = "containerd.sock"
	ttrpcSuffix    = ".ttrpc"
	logFile        = "containerd.log"
	pidFile        = "containerd.pid"
	maxUnixSockLen = 107 // sun_path is 108 bytes including the NUL
)

// How long containerd may take to answer after it was started, and how the
// supervisor backs off between restarts.
const (
	startTimeout   = 30 * time.Second
	restartBackoff = 500 * time.Millisecond
	maxBackoff     = 30 * time.Second
	adoptedPoll    = time.Second
)

// daemonPaths are the locations of our own containerd's files.
type daemonPaths struct {
	dir, config, root, state, socket, log, pid string
}

func pathsFor(dataDir string) (daemonPaths, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return daemonPaths{}, fmt.Errorf("containerd data dir %q: %w", dataDir, err)
	}
	dir := filepath.Join(abs, daemonDir)
	p := daemonPaths{
		dir:    dir,
		config: filepath.Join(dir, configFile),
		root:   filepath.Join(dir, "root"),
		state:  filepath.Join(dir, "state"),
		socket: filepath.Join(dir, socketFile),
		log:    filepath.Join(dir, logFile),
		pid:    filepath.Join(dir, pidFile),
	}
	// The ttrpc socket is the longer of the two.
	if n := len(p.socket + ttrpcSuffix); n > maxUnixSockLen {
		return daemonPaths{}, fmt.Errorf("data dir %q is too long for containerd's sockets: %s would be %d bytes, "+
			"the limit for a unix socket path is %d; use a shorter data dir or pass the address of a running containerd",
			dataDir, p.socket+ttrpcSuffix, n, maxUnixSockLen)
	}
	return p, nil
}

// runcRoot is where runc keeps its state for our own containerd. Keeping it
// apart from the default /run/containerd/runc lets several Drover agents (and
// a system containerd) share a host without their runc states colliding.
func (p daemonPaths) runcRoot() string { return filepath.Join(p.state, "runc") }

// configTOML is a minimal containerd 1.6 configuration: only what running
// containers from local images needs, so it starts in well under a second.
// The v1 linux runtime stays: the 1.6 tasks service will not load without it.
func (p daemonPaths) configTOML() string {
	q := strconv.Quote
	return fmt.Sprintf(`# Written by Drover: its own containerd. Regenerated on every start.
version = 2
root = %s
state = %s
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.internal.v1.opt",
]

[grpc]
  address = %s

[ttrpc]
  address = %s

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""
`, q(p.root), q(p.state), q(p.socket), q(p.socket+ttrpcSuffix))
}

// daemon starts and supervises our own containerd.
type daemon struct {
	paths  daemonPaths
	logger *slog.Logger

	mu      sync.Mutex
	closed  bool
	stop    chan struct{} // closed by Close: stop supervising
	exited  chan struct{} // closed when the current child exits (nil if adopted)
	pid     int
	stopped chan struct{} // closed when the supervisor loop has returned
}

// startDaemon reuses a containerd that already answers on the socket, or
// starts one, then supervises it until close.
func startDaemon(ctx context.Context, dataDir string, logger *slog.Logger) (*daemon, error) {
	p, err := pathsFor(dataDir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(p.dir, 0o711); err != nil {
		return nil, fmt.Errorf("containerd dir: %w", err)
	}
	d := &daemon{paths: p, logger: logger, stop: make(chan struct{}), stopped: make(chan struct{})}

	if err := d.startOrReuse(ctx); err != nil {
		return nil, err
	}
	go d.supervise()
	return d, nil
}

// startOrReuse adopts the containerd that answers on the socket or starts
// one. A lock file keeps two Drovers on one data dir (or two drivers in one
// process) from starting two containerds at once.
func (d *daemon) startOrReuse(ctx context.Context) error {
	lock, err := os.OpenFile(filepath.Join(d.paths.dir, "start.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("containerd start lock: %w", err)
	}
	defer lock.Close() // releases the lock
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("containerd start lock: %w", err)
	}
	if answers(ctx, d.paths.socket) {
		pid, _ := readPid(d.paths.pid)
		if pid > 0 && (!alive(pid) || !isContainerdFor(pid, d.paths.config)) {
			pid = 0 // a stale pid file: watch the socket instead
		}
		d.mu.Lock()
		d.exited, d.pid = nil, pid
		d.mu.Unlock()
		d.logger.Info("reusing running containerd", "socket", d.paths.socket, "pid", pid)
		return nil
	}
	return d.spawn(ctx)
}

// answers reports whether a containerd serves the socket.
func answers(ctx context.Context, socket string) bool {
	if _, err := os.Stat(socket); err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := client.New(socket, client.WithTimeout(time.Second))
	if err != nil {
		return false
	}
	defer c.Close()
	_, err = c.Version(ctx)
	return err == nil
}

// spawn starts containerd as a child in its own session, so that it (and
// the containers it runs) survives a kill -9 of Drover, and waits until it
// answers.
func (d *daemon) spawn(ctx context.Context) error {
	p := d.paths
	if err := os.WriteFile(p.config, []byte(p.configTOML()), 0o600); err != nil {
		return fmt.Errorf("writing containerd config: %w", err)
	}
	// A socket left by a containerd that died would make the new one fail
	// to listen; nothing answers on it (checked by the caller).
	for _, s := range []string{p.socket, p.socket + ttrpcSuffix} {
		if err := os.Remove(s); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing stale containerd socket: %w", err)
		}
	}
	bin, err := exec.LookPath("containerd")
	if err != nil {
		return fmt.Errorf("containerd is not installed (apt-get install containerd), or pass the address of a running one: %w", err)
	}
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("containerd log: %w", err)
	}
	logStart, _ := logf.Seek(0, 2)
	cmd := exec.Command(bin, "--config", p.config)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = p.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting containerd: %w", err)
	}
	logf.Close() // the child has its own copy
	if err := os.WriteFile(p.pid, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		d.logger.Warn("writing containerd pid file", "err", err)
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
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	for {
		if answers(ctx, p.socket) {
			d.logger.Info("containerd started", "pid", cmd.Process.Pid, "socket", p.socket, "took", time.Since(start).Round(time.Millisecond))
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("containerd exited at start (%s); end of %s:\n%s", cmd.ProcessState, p.log, tailFrom(p.log, logStart, 20))
		case <-deadline.C:
			_ = cmd.Process.Kill()
			return fmt.Errorf("containerd did not answer on %s within %s; end of %s:\n%s", p.socket, startTimeout, p.log, tailFrom(p.log, logStart, 20))
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			return fmt.Errorf("waiting for containerd to start: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// supervise restarts containerd with back-off whenever it goes away, until
// close.
func (d *daemon) supervise() {
	defer close(d.stopped)
	backoff := restartBackoff
	for {
		if !d.waitGone() {
			return
		}
		d.logger.Warn("containerd went away; restarting", "backoff", backoff)
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
			d.logger.Error("restarting containerd", "err", err)
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = restartBackoff
	}
}

// waitGone blocks until containerd is gone (true) or close (false).
func (d *daemon) waitGone() bool {
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
	// An adopted containerd is not our child: poll it.
	t := time.NewTicker(adoptedPoll)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return false
		case <-t.C:
		}
		if pid > 0 {
			if !alive(pid) {
				return true
			}
		} else if !answers(context.Background(), d.paths.socket) {
			return true
		}
	}
}

// close stops supervising; containerd keeps running.
func (d *daemon) close() {
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

// StopOwnContainerd stops the containerd that Open started for dataDir (from
// its pid file): SIGTERM, then SIGKILL after 10 seconds, and waits for it to
// exit. Containers it ran keep running in their shims; destroy them first.
// No pid file, or no such process, is not an error.
func StopOwnContainerd(dataDir string) error {
	p, err := pathsFor(dataDir)
	if err != nil {
		return err
	}
	pid, err := readPid(p.pid)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	if !alive(pid) || !isContainerdFor(pid, p.config) {
		_ = os.Remove(p.pid)
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stopping containerd %d: %w", pid, err)
	}
	if !waitDead(pid, 10*time.Second) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		if !waitDead(pid, 5*time.Second) {
			return fmt.Errorf("containerd %d did not exit after SIGKILL", pid)
		}
	}
	_ = os.Remove(p.pid)
	return nil
}

func waitDead(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !alive(pid) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return !alive(pid)
}

// alive reports whether pid is a live process (zombies count as dead: a
// child of ours that exited waits to be reaped by its supervisor).
func alive(pid int) bool {
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

// isContainerdFor checks that pid runs containerd with our config, so a
// recycled pid is never killed.
func isContainerdFor(pid int, config string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if len(args) == 0 || filepath.Base(args[0]) != "containerd" {
		return false
	}
	for _, a := range args[1:] {
		if a == config {
			return true
		}
	}
	return false
}

func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("containerd pid file %s: bad content %q", path, b)
	}
	return pid, nil
}

// tailFrom returns the last n lines written to path since offset.
func tailFrom(path string, offset int64, n int) string {
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
