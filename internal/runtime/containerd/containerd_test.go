package containerd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/drover-org/drover/internal/imagebuild"
	"github.com/drover-org/drover/internal/runtime"
	"github.com/drover-org/drover/internal/runtime/runtimetest"
	"github.com/drover-org/drover/internal/supervise"
	"github.com/drover-org/drover/internal/testenv"
)

// One containerd serves the whole package: it starts with the first test
// that needs it and is stopped by TestMain.
var shared struct {
	once    sync.Once
	dataDir string
	err     error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.dataDir != "" {
		if err := cleanupContainerd(shared.dataDir); err != nil {
			fmt.Fprintln(os.Stderr, "cleanup:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// sharedDataDir returns the data dir of the package's containerd, starting
// it first if needed.
func sharedDataDir(t *testing.T) string {
	t.Helper()
	testenv.RequireContainerd(t)
	testenv.RequireFile(t, imagebuild.DefaultBusybox, "apt-get install busybox-static")
	shared.once.Do(func() {
		// A short path under /tmp: containerd's socket path must stay
		// under 108 bytes.
		dir, err := os.MkdirTemp("", "drv")
		if err != nil {
			shared.err = err
			return
		}
		shared.dataDir = dir
		d, err := Open(context.Background(), Config{DataDir: dir, Logger: testLogger()})
		if err != nil {
			shared.err = err
			return
		}
		d.Close()
	})
	if shared.err != nil {
		t.Fatalf("starting the shared containerd: %v", shared.err)
	}
	return shared.dataDir
}

// cleanupContainerd destroys every container of the data dir's containerd,
// stops it and removes the dir.
func cleanupContainerd(dir string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var errs []error
	if d, err := Open(ctx, Config{DataDir: dir}); err == nil {
		all, err := d.Recover(ctx)
		errs = append(errs, err)
		for _, st := range all {
			errs = append(errs, d.Destroy(ctx, st.ID))
		}
		d.Close()
	}
	errs = append(errs, StopOwnContainerd(dir), os.RemoveAll(dir))
	return errors.Join(errs...)
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

func openShared(t *testing.T, cfg Config) *Driver {
	t.Helper()
	cfg.DataDir = sharedDataDir(t)
	if cfg.Logger == nil {
		cfg.Logger = testLogger()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestConformance(t *testing.T) {
	runtimetest.Suite(t, func(t *testing.T) (runtime.Driver, runtime.ImageStore) {
		d := openShared(t, Config{})
		return d, d
	})
}

// importBusybox imports the default busybox image into d.
func importBusybox(t *testing.T, d *Driver) {
	t.Helper()
	img, err := imagebuild.Build(imagebuild.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := imagebuild.WriteOCIArchive(&buf, img, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Import(context.Background(), &buf); err != nil {
		t.Fatalf("Import: %v", err)
	}
}

func TestStartTiming(t *testing.T) {
	d := openShared(t, Config{})
	importBusybox(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const n = 5
	var total, destroy time.Duration
	for i := range n {
		id := fmt.Sprintf("timing-%d-%d", os.Getpid(), i)
		start := time.Now()
		if _, err := d.Start(ctx, runtime.ContainerSpec{ID: id, Image: imagebuild.DefaultRef, Command: []string{"sleep", "30"}}); err != nil {
			t.Fatalf("Start: %v", err)
		}
		total += time.Since(start)
		start = time.Now()
		if err := d.Destroy(ctx, id); err != nil {
			t.Fatalf("Destroy: %v", err)
		}
		destroy += time.Since(start)
	}
	t.Logf("container Start: %s on average over %d; Destroy of a running one: %s", total/n, n, destroy/n)
}

// TestLoggerBinary checks how the shim runs the logger binary: argv
// "shim-logger <LogPath>", stdout on fd 3, stderr on fd 4, and fd 5 to
// close once ready.
func TestLoggerBinary(t *testing.T) {
	dir := t.TempDir()
	logger := filepath.Join(dir, "logger.sh")
	script := `#!/bin/sh
echo "args: $*" > "$2.args"
exec 5>&-
while read -r l; do echo "out: $l" >> "$2"; done <&3 &
while read -r l; do echo "err: $l" >> "$2"; done <&4 &
wait
`
	if err := os.WriteFile(logger, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	d := openShared(t, Config{LoggerBinary: logger})
	importBusybox(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	logPath := filepath.Join(dir, "logs", "c.log")
	id := fmt.Sprintf("logger-%d", os.Getpid())
	t.Cleanup(func() { d.Destroy(context.Background(), id) })
	if _, err := d.Start(ctx, runtime.ContainerSpec{
		ID: id, Image: imagebuild.DefaultRef, LogPath: logPath,
		Command: []string{"sh", "-c", "echo hello; echo oops >&2"},
	}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	ch, err := d.Wait(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	<-ch
	waitFor(t, func() bool {
		b, _ := os.ReadFile(logPath)
		return strings.Contains(string(b), "out: hello") && strings.Contains(string(b), "err: oops")
	}, "the logger binary to write both streams")
	args, err := os.ReadFile(logPath + ".args")
	if err != nil || strings.TrimSpace(string(args)) != "args: shim-logger "+logPath {
		t.Errorf("logger argv: %q, %v; want \"args: shim-logger %s\"", args, err, logPath)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOwnContainerd starts a second containerd to check reuse, supervision
// (restart after kill -9) and StopOwnContainerd.
func TestOwnContainerd(t *testing.T) {
	testenv.RequireContainerd(t)
	dir, err := os.MkdirTemp("", "drv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cleanupContainerd(dir); err != nil {
			t.Error(err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	start := time.Now()
	d1, err := Open(ctx, Config{DataDir: dir, Logger: testLogger()})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer d1.Close()
	t.Logf("Open started containerd in %s", time.Since(start).Round(time.Millisecond))
	pid1, err := supervise.ReadPid(filepath.Join(dir, "containerd", "containerd.pid"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"config.toml", "root", "state", "containerd.sock", "containerd.log"} {
		if _, err := os.Stat(filepath.Join(dir, "containerd", f)); err != nil {
			t.Errorf("own containerd: %v", err)
		}
	}

	// A second Open reuses the running containerd.
	d2, err := Open(ctx, Config{DataDir: dir, Logger: testLogger()})
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	defer d2.Close()
	if pid, _ := supervise.ReadPid(filepath.Join(dir, "containerd", "containerd.pid")); pid != pid1 {
		t.Errorf("second Open started another containerd (pid %d, was %d)", pid, pid1)
	}

	// A container to outlive containerd's death, and a Wait pending across
	// it.
	importBusybox(t, d1)
	id := fmt.Sprintf("survivor-%d", os.Getpid())
	if _, err := d1.Start(ctx, runtime.ContainerSpec{ID: id, Image: imagebuild.DefaultRef, Command: []string{"sleep", "300"}}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	exited, err := d2.Wait(ctx, id)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}

	// kill -9: the supervisor starts a new one and the client reconnects.
	if err := syscall.Kill(pid1, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var pid2 int
	waitFor(t, func() bool {
		pid2, _ = supervise.ReadPid(filepath.Join(dir, "containerd", "containerd.pid"))
		return pid2 != pid1 && supervise.Alive(pid2)
	}, "containerd to be restarted")
	waitFor(t, func() bool {
		_, err := d2.client.Version(ctx)
		return err == nil
	}, "the client to reconnect")
	if st, err := d2.Inspect(ctx, id); err != nil || st.State != runtime.StateRunning {
		t.Fatalf("container after containerd's restart: %+v, %v; want running", st, err)
	}
	select {
	case es := <-exited:
		t.Fatalf("Wait yielded while the container still runs: %+v", es)
	default:
	}
	if err := d1.Stop(ctx, id, "", 100*time.Millisecond); err != nil {
		t.Fatalf("Stop after containerd's restart: %v", err)
	}
	select {
	case es := <-exited:
		if es.Code != 137 || es.Err != nil {
			t.Errorf("Wait across containerd's restart gave %+v, want code 137", es)
		}
	case <-time.After(20 * time.Second):
		t.Error("Wait pending across containerd's restart never yielded")
	}
	if err := d1.Destroy(ctx, id); err != nil {
		t.Errorf("Destroy: %v", err)
	}

	// Close leaves it running; StopOwnContainerd stops it.
	d1.Close()
	d2.Close()
	if !supervise.Alive(pid2) {
		t.Fatal("Close stopped containerd")
	}
	if err := StopOwnContainerd(dir); err != nil {
		t.Fatalf("StopOwnContainerd: %v", err)
	}
	if supervise.Alive(pid2) {
		t.Error("containerd still runs after StopOwnContainerd")
	}
	if err := StopOwnContainerd(dir); err != nil {
		t.Errorf("second StopOwnContainerd: %v", err)
	}
}

func TestOpenFailures(t *testing.T) {
	long := "/tmp/" + strings.Repeat("d", 100)
	_, err := Open(context.Background(), Config{DataDir: long})
	if err == nil || !strings.Contains(err.Error(), "too long") {
		t.Errorf("Open with a long data dir: %v, want an error saying it is too long", err)
	}
	if _, err := Open(context.Background(), Config{}); err == nil {
		t.Error("Open with neither address nor data dir succeeded")
	}
}

func TestProcessArgs(t *testing.T) {
	imgEP, imgCmd := []string{"/ep"}, []string{"cmd"}
	for _, tc := range []struct {
		name                string
		imgEP, imgCmd       []string
		entrypoint, command []string
		want                string
	}{
		{"Image", imgEP, imgCmd, nil, nil, "/ep cmd"},
		{"CommandAfterImageEntrypoint", imgEP, imgCmd, nil, []string{"x"}, "/ep x"},
		{"EntrypointDropsImageCmd", imgEP, imgCmd, []string{"/e"}, nil, "/e"},
		{"Both", imgEP, imgCmd, []string{"/e"}, []string{"x"}, "/e x"},
		{"EmptyCommand", imgEP, imgCmd, nil, []string{}, "/ep"},
		{"ImageCmdOnly", nil, []string{"sh"}, nil, nil, "sh"},
		{"Nothing", nil, nil, nil, nil, "error"},
		{"EmptyEntrypoint", imgEP, imgCmd, []string{}, nil, "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args, err := processArgs(tc.imgEP, tc.imgCmd, tc.entrypoint, tc.command)
			got := strings.Join(args, " ")
			if err != nil {
				got = "error"
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestClearEntrypointCommand(t *testing.T) {
	img := imageConfig{Entrypoint: []string{"/ep"}, Cmd: []string{"cmd"}, opt: oci.WithImageConfig(nil)}
	for _, tc := range []struct {
		name string
		spec runtime.ContainerSpec
		want string
	}{
		{"ClearCommand", runtime.ContainerSpec{ClearCommand: true}, "/ep"},
		{"ClearEntrypointWithCommand", runtime.ContainerSpec{ClearEntrypoint: true, Command: []string{"sh"}}, "sh"},
		{"ClearBoth", runtime.ContainerSpec{ClearEntrypoint: true, ClearCommand: true}, "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.spec.ID = "x"
			opts, err := specOpts(img, tc.spec)
			got := "error"
			if err == nil {
				s := &oci.Spec{Process: &specs.Process{}}
				// The args option comes right after the image's.
				if err := opts[2](context.Background(), nil, nil, s); err != nil {
					t.Fatal(err)
				}
				got = strings.Join(s.Process.Args, " ")
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSpecMounts(t *testing.T) {
	dir := t.TempDir()
	ms, err := specMounts([]runtime.Mount{
		{Source: dir, Target: "/data", ReadOnly: true},
		{Type: "tmpfs", Target: "/run", Options: []string{"size=65536k", "exec"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%s %v", ms[0].Type, ms[0].Options); got != "bind [rbind rprivate ro]" {
		t.Errorf("bind mount: %s", got)
	}
	if got := fmt.Sprintf("%s %v", ms[1].Type, ms[1].Options); got != "tmpfs [nosuid nodev noexec rw size=65536k exec]" {
		t.Errorf("tmpfs mount: %s", got)
	}
	for _, bad := range []runtime.Mount{
		{Source: filepath.Join(dir, "missing"), Target: "/x"},
		{Source: "relative", Target: "/x"},
		{Source: dir, Target: "relative"},
		{Type: "nfs", Target: "/x"},
	} {
		if _, err := specMounts([]runtime.Mount{bad}); err == nil {
			t.Errorf("specMounts(%+v) succeeded", bad)
		}
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{
		"SIGTERM": syscall.SIGTERM, "TERM": syscall.SIGTERM, "sigquit": syscall.SIGQUIT,
		"9": syscall.SIGKILL, "SIGRTMIN+3": 37,
	} {
		if got, err := parseSignal(in); err != nil || got != want {
			t.Errorf("parseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "NOPE", "0", "-1", "100"} {
		if _, err := parseSignal(in); err == nil {
			t.Errorf("parseSignal(%q) succeeded", in)
		}
	}
}

func TestClampRlimits(t *testing.T) {
	var host syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &host); err != nil {
		t.Fatal(err)
	}
	s := &oci.Spec{Process: &specs.Process{Rlimits: []specs.POSIXRlimit{
		{Type: "RLIMIT_NOFILE", Soft: 1 << 40, Hard: 1 << 40},
		{Type: "RLIMIT_NOFILE_UNKNOWN", Soft: 5, Hard: 5},
	}}}
	if err := clampRlimits(context.Background(), nil, nil, s); err != nil {
		t.Fatal(err)
	}
	if rl := s.Process.Rlimits[0]; rl.Hard != host.Max || rl.Soft != host.Max {
		t.Errorf("RLIMIT_NOFILE clamped to %d:%d, want the host's hard limit %d", rl.Soft, rl.Hard, host.Max)
	}
	if rl := s.Process.Rlimits[1]; rl.Hard != 5 {
		t.Errorf("unknown rlimit changed: %+v", rl)
	}
}

func TestConfigTOML(t *testing.T) {
	p, err := pathsFor("/var/lib/drover")
	if err != nil {
		t.Fatal(err)
	}
	toml := p.configTOML()
	for _, want := range []string{
		`root = "/var/lib/drover/containerd/root"`,
		`state = "/var/lib/drover/containerd/state"`,
		`address = "/var/lib/drover/containerd/containerd.sock"`,
		`address = "/var/lib/drover/containerd/containerd.sock.ttrpc"`,
		`"io.containerd.grpc.v1.cri"`,
	} {
		if !strings.Contains(toml, want) {
			t.Errorf("config lacks %s:\n%s", want, toml)
		}
	}
}

// TestRawLogKeepsBothStreams guards against the shim's file:// log bug: it
// shares one descriptor between stdout and stderr and closes it when the
// first stream ends, losing what the other still had to write.
func TestRawLogKeepsBothStreams(t *testing.T) {
	d := openShared(t, Config{})
	importBusybox(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	const n = 15 // lost output in about one run in ten before the fix
	lost := 0
	for i := range n {
		id := fmt.Sprintf("rawlog-%d-%d", os.Getpid(), i)
		logPath := filepath.Join(dir, id+".log")
		if _, err := d.Start(ctx, runtime.ContainerSpec{
			ID: id, Image: imagebuild.DefaultRef, LogPath: logPath,
			Command: []string{"sh", "-c", "echo out; echo err >&2"},
		}); err != nil {
			t.Fatalf("Start: %v", err)
		}
		ch, err := d.Wait(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		<-ch
		deadline := time.Now().Add(2 * time.Second)
		for {
			b, _ := os.ReadFile(logPath)
			if bytes.Contains(b, []byte("out\n")) && bytes.Contains(b, []byte("err\n")) {
				break
			}
			if time.Now().After(deadline) {
				t.Logf("%s: log holds %q", id, b)
				lost++
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := d.Destroy(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d containers lost output", lost, n)
	}
}
