package logs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// shimEnv makes the test binary act as `drover shim-logger $shimEnv`, so the
// tests can run it the way containerd's shim does.
const shimEnv = "DROVER_LOGS_TEST_SHIM_LOGGER"

func TestMain(m *testing.M) {
	if path, ok := os.LookupEnv(shimEnv); ok {
		if err := RunShimLogger(path); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(3) // RunShimLogger does not return
	}
	os.Exit(m.Run())
}

// shim is a shim logger process started as containerd's runc shim starts
// one (NewBinaryIO): stdout pipe as fd 3, stderr pipe as fd 4, ready pipe as
// fd 5.
type shim struct {
	cmd            *exec.Cmd
	stdout, stderr *os.File // write ends, the container's side
	ready          *os.File // read end
	exited         chan error
}

func startShim(t *testing.T, path string) *shim {
	t.Helper()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), shimEnv+"="+path, "CONTAINER_ID=c1", "CONTAINER_NAMESPACE=drover")
	cmd.ExtraFiles = []*os.File{outR, errR, readyW}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	outR.Close()
	errR.Close()
	readyW.Close()
	s := &shim{cmd: cmd, stdout: outW, stderr: errW, ready: readyR, exited: make(chan error, 1)}
	go func() {
		err := cmd.Wait()
		if err != nil {
			err = fmt.Errorf("%w (stderr: %q)", err, stderr.String())
		}
		s.exited <- err
	}()
	t.Cleanup(func() {
		outW.Close()
		errW.Close()
		readyR.Close()
		cmd.Process.Kill()
	})
	return s
}

// waitReady returns whether the logger wrote the ready byte, as the shim
// checks for binary-v2 loggers.
func (s *shim) waitReady(t *testing.T) bool {
	t.Helper()
	b, err := io.ReadAll(s.ready)
	if err != nil {
		t.Fatal(err)
	}
	return len(b) == 1 && b[0] == 0
}

func (s *shim) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.exited:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("shim logger did not exit")
		return nil
	}
}

func TestShimLogger(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctr", "out.log")
	s := startShim(t, path)
	if !s.waitReady(t) {
		t.Fatal("logger did not signal readiness")
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("log file not created before ready: %v", err)
	}
	fmt.Fprintf(s.stdout, "hello from stdout\nsecond")
	fmt.Fprintf(s.stderr, "oops on stderr\n")
	s.stdout.Close()
	s.stderr.Close()
	if err := s.wait(t); err != nil {
		t.Fatalf("logger exited: %v", err)
	}
	got := readAll(t, path, ReadOptions{Tail: -1})
	byStream := map[string][]string{}
	for _, e := range got {
		byStream[e.Stream] = append(byStream[e.Stream], e.Line)
	}
	equalLines(t, byStream[Stdout], []string{"hello from stdout", "second"})
	equalLines(t, byStream[Stderr], []string{"oops on stderr"})
}

func TestShimLoggerExitsOnSIGTERM(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.log")
	s := startShim(t, path)
	if !s.waitReady(t) {
		t.Fatal("logger did not signal readiness")
	}
	fmt.Fprintf(s.stdout, "before term\n")
	f := follow(t, path, ReadOptions{Tail: -1, pollEvery: time.Millisecond})
	f.waitFor(t, 1)
	// The pipes stay open, as when the container's children keep them.
	start := time.Now()
	s.cmd.Process.Signal(syscall.SIGTERM)
	if err := s.wait(t); err != nil {
		t.Fatalf("logger exited: %v", err)
	}
	if d := time.Since(start); d > shutdownGrace+5*time.Second {
		t.Fatalf("took %v to exit", d)
	}
	equalLines(t, f.stop(t), []string{"before term"})
}

func TestShimLoggerFailsWithoutReady(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocker, nil, 0o640)
	s := startShim(t, filepath.Join(blocker, "out.log")) // parent is a file
	if s.waitReady(t) {
		t.Fatal("logger signalled readiness without a log file")
	}
	var exit *exec.ExitError
	if err := s.wait(t); !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1", err)
	}
}
