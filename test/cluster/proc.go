package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Proc is a process started in a host by Host.Start.
type Proc struct {
	name string // host and program, for messages
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // cmd.Wait's, set before done closes
}

var procSeq atomic.Int64

// Start runs name with args in the host's network namespace, in a process
// group of its own, with stdout and stderr appended to a log file (see
// LogPath). The process group is killed with SIGKILL when t's test ends,
// and anything else still in the namespace when the cluster is removed.
// Logs are kept when the test fails.
func (h *Host) Start(t testing.TB, name string, args ...string) *Proc {
	t.Helper()
	log := filepath.Join(h.c.logDir, fmt.Sprintf("%s-%s-%d.log", h.Name, filepath.Base(name), procSeq.Add(1)))
	f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // the child has its own copy
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := startIn(h, cmd); err != nil {
		t.Fatalf("%s: start %s: %v", h.Name, name, err)
	}
	p := &Proc{name: h.Name + ": " + filepath.Base(name), cmd: cmd, log: log, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	h.c.mu.Lock()
	h.c.procs = append(h.c.procs, p)
	h.c.mu.Unlock()
	t.Cleanup(func() {
		p.killGroup()
		if !p.waitDone(10 * time.Second) {
			t.Errorf("%s: process %d did not exit after SIGKILL", p.name, p.Pid())
		}
	})
	return p
}

// Pid is the process's id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// LogPath is the file that holds the process's stdout and stderr.
func (p *Proc) LogPath() string { return p.log }

// Log is the process's output so far.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Kill9 sends SIGKILL to the process alone, as a crash would end it: what
// it started (containerd, say) lives on. It returns once the process is
// reaped.
func (p *Proc) Kill9() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Wait waits up to timeout for the process to exit and returns how it
// ended (nil for exit status 0).
func (p *Proc) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return fmt.Errorf("%s: still running after %s", p.name, timeout)
	}
}

func (p *Proc) killGroup() { _ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) }

func (p *Proc) waitDone(timeout time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// ExecTimeout bounds how long Exec waits for a command.
const ExecTimeout = 2 * time.Minute

// Exec runs a command in the host's network namespace and waits for it; it
// returns stdout and stderr together. A command still running after
// ExecTimeout is killed with its process group.
func (h *Host) Exec(t testing.TB, args ...string) (string, error) {
	t.Helper()
	if len(args) == 0 {
		t.Fatal("Exec: no command")
	}
	ctx, cancel := context.WithTimeout(context.Background(), ExecTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if err := startIn(h, cmd); err != nil {
		return "", fmt.Errorf("%s: %s: %w", h.Name, strings.Join(args, " "), err)
	}
	err := cmd.Wait()
	if err != nil {
		err = fmt.Errorf("%s: %s: %w", h.Name, strings.Join(args, " "), err)
	}
	return out.String(), err
}

// MustExec is Exec that fails the test on error.
func (h *Host) MustExec(t testing.TB, args ...string) string {
	t.Helper()
	out, err := h.Exec(t, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return out
}

// startIn starts cmd in the host's network and UTS namespaces. A child
// inherits the namespaces of the thread that forks it, so cmd.Start runs on
// a thread locked and moved into them. If the thread cannot be moved back
// it stays locked and Go discards it when the goroutine ends, so no other
// goroutine ever runs in a host's namespaces.
func startIn(h *Host, cmd *exec.Cmd) error {
	netNS, err := os.Open(h.NSPath())
	if err != nil {
		return err
	}
	defer netNS.Close()
	utsNS, err := os.Open(h.utsPath())
	if err != nil {
		return err
	}
	defer utsNS.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		tid := unix.Gettid()
		var origs []*os.File
		for _, kind := range []string{"net", "uts"} {
			f, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/%s", tid, kind))
			if err != nil {
				runtime.UnlockOSThread()
				errc <- fmt.Errorf("open current namespace: %w", err)
				return
			}
			defer f.Close()
			origs = append(origs, f)
		}
		// back returns the thread to its namespaces; on failure the
		// thread stays locked.
		back := func() error {
			if err := unix.Setns(int(origs[0].Fd()), unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("return to the original network namespace: %w", err)
			}
			if err := unix.Setns(int(origs[1].Fd()), unix.CLONE_NEWUTS); err != nil {
				return fmt.Errorf("return to the original UTS namespace: %w", err)
			}
			runtime.UnlockOSThread()
			return nil
		}
		if err := unix.Setns(int(netNS.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(fmt.Errorf("enter %s: %w", h.NSPath(), err), back())
			return
		}
		if err := unix.Setns(int(utsNS.Fd()), unix.CLONE_NEWUTS); err != nil {
			errc <- errors.Join(fmt.Errorf("enter %s: %w", h.utsPath(), err), back())
			return
		}
		startErr := cmd.Start()
		if err := back(); err != nil {
			if startErr == nil { // reported as failed, so it must not live on
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				_ = cmd.Wait()
			}
			errc <- errors.Join(startErr, err)
			return // the goroutine ends with its thread locked: Go discards it
		}
		errc <- startErr
	}()
	return <-errc
}
