package runtimetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/drover-org/drover/internal/imagebuild"
	"github.com/drover-org/drover/internal/runtime"
)

// Images the suite imports. EnsureImage must find them by these names and
// by their normalized forms.
const (
	ImageOCI    = "drover.local/runtimetest/busybox:oci"
	ImageDocker = "drover.local/runtimetest/busybox:docker"
	// ImageShort is imported from a docker archive under a short name and
	// must be found as docker.io/library/runtimetest-short:v1.
	ImageShort = "runtimetest-short:v1"
	// ImageEntrypoint has ENTRYPOINT ["echo", "ep"], CMD ["imgcmd"],
	// WORKDIR /home and IMGVAR=img.
	ImageEntrypoint = "drover.local/runtimetest/entrypoint:v1"
	// ImageHealth has a HEALTHCHECK (see healthTest) and the file
	// /data/seed/hello.txt ("seeded", mode 0640).
	ImageHealth = "drover.local/runtimetest/health:v1"
)

// timeout bounds each subtest's calls.
const timeout = 60 * time.Second

// Suite runs the conformance tests of runtime.Driver and runtime.ImageStore.
// newDriver returns a driver (and its image store) connected to the runtime
// under test; it may be called more than once, and a later driver must see
// what an earlier one did (the adoption test closes the first, when it is an
// io.Closer, and recovers with a second). newDriver registers its own
// cleanup. The subtests run in sequence and need /bin/busybox.
func Suite(t *testing.T, newDriver func(t *testing.T) (runtime.Driver, runtime.ImageStore)) {
	s := &suite{t: t, newDriver: newDriver, prefix: "rt" + randHex(4) + "-"}
	s.d, s.is = newDriver(t)

	if !t.Run("Import", s.testImport) {
		t.Fatal("importing the test images failed; the other tests need them")
	}
	t.Run("EnsureImage", s.testEnsureImage)
	t.Run("ExitCodeAndLogs", s.testExitCodeAndLogs)
	t.Run("Inspect", s.testInspect)
	t.Run("NotFound", s.testNotFound)
	t.Run("DuplicateID", s.testDuplicateID)
	t.Run("Config", s.testConfig)
	t.Run("EntrypointCommand", s.testEntrypointCommand)
	t.Run("Mounts", s.testMounts)
	t.Run("NetNS", s.testNetNS)
	t.Run("BadNetNS", s.testBadNetNS)
	t.Run("UnknownImage", s.testUnknownImage)
	t.Run("Stop", s.testStop)
	t.Run("Destroy", s.testDestroy)
	t.Run("Adoption", s.testAdoption)
	t.Run("Settings", s.testSettings)
	t.Run("Exec", s.testExec)
	t.Run("Stats", s.testStats)
	t.Run("PauseResume", s.testPauseResume)
	t.Run("Kill", s.testKill)
	t.Run("Top", s.testTop)
	t.Run("Copy", s.testCopy)
	t.Run("ImageHealthcheck", s.testImageHealthcheck)
	t.Run("SeedVolume", s.testSeedVolume)
}

type suite struct {
	t         *testing.T
	newDriver func(t *testing.T) (runtime.Driver, runtime.ImageStore)
	d         runtime.Driver
	is        runtime.ImageStore
	prefix    string // of container IDs, unique per run
	n         int
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// newID returns a fresh container ID; the container is destroyed when the
// test ends.
func (s *suite) newID(t *testing.T) string {
	s.n++
	id := fmt.Sprintf("%s%d", s.prefix, s.n)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := s.d.Destroy(ctx, id); err != nil {
			t.Errorf("cleanup: Destroy(%s): %v", id, err)
		}
	})
	return id
}

// spec returns a spec for a fresh container of img, logging to a file in
// the test's temp dir.
func (s *suite) spec(t *testing.T, img string, cmd ...string) runtime.ContainerSpec {
	sp := runtime.ContainerSpec{
		ID:      s.newID(t),
		Image:   img,
		LogPath: filepath.Join(t.TempDir(), "log"),
		Labels:  map[string]string{"test": t.Name()},
	}
	if cmd != nil {
		sp.Command = cmd
	}
	return sp
}

// run starts spec, waits for it to exit and returns the exit code.
func (s *suite) run(t *testing.T, spec runtime.ContainerSpec) int {
	t.Helper()
	ctx := ctxFor(t)
	if _, err := s.d.Start(ctx, spec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	ch, err := s.d.Wait(ctx, spec.ID)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	var es runtime.ExitStatus
	select {
	case es = <-ch:
	case <-ctx.Done():
		t.Fatalf("container did not exit within %s", timeout)
	}
	if es.Err != nil {
		t.Fatalf("Wait: exit status error: %v", es.Err)
	}
	return es.Code
}

// readLog returns the log file once it holds want: the shim may still be
// copying the last output when Wait yields.
func readLog(t *testing.T, path, want string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("reading log: %v", err)
		}
		if bytes.Contains(b, []byte(want)) {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("log %s never got %q; it holds:\n%s", path, want, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// mustContain fails unless the log has every line in want.
func mustContain(t *testing.T, log string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(log, w) {
			t.Errorf("log lacks %q; it holds:\n%s", w, log)
		}
	}
}

func (s *suite) testImport(t *testing.T) {
	ctx := ctxFor(t)
	build := func(opts imagebuild.Options) imageArchive {
		img, err := imagebuild.Build(opts)
		if err != nil {
			t.Fatalf("building test image: %v", err)
		}
		return imageArchive{img: img}
	}
	plain := build(imagebuild.Options{})
	ep := build(imagebuild.Options{
		Entrypoint: []string{"echo", "ep"},
		Cmd:        []string{"imgcmd"},
		WorkingDir: "/home",
		Env:        append(slices.Clone(imagebuild.DefaultEnv), "IMGVAR=img"),
	})

	for _, tc := range []struct {
		name, ref, want string
		docker          bool
		a               imageArchive
	}{
		{"OCI", ImageOCI, ImageOCI, false, plain},
		{"Docker", ImageDocker, ImageDocker, true, plain},
		{"DockerShortName", ImageShort, "docker.io/library/" + ImageShort, true, plain},
		{"OCIEntrypoint", ImageEntrypoint, ImageEntrypoint, false, ep},
		{"DockerHealth", ImageHealth, ImageHealth, true, build(imagebuild.Options{
			Healthcheck: &healthTest,
			Files:       map[string]imagebuild.File{"/data/seed/hello.txt": {Mode: 0o640, Data: []byte("seeded")}},
		})},
	} {
		var buf bytes.Buffer
		write := imagebuild.WriteOCIArchive
		if tc.docker {
			write = imagebuild.WriteDockerArchive
		}
		if err := write(&buf, tc.a.img, tc.ref); err != nil {
			t.Fatalf("%s: writing archive: %v", tc.name, err)
		}
		imgs, err := s.is.Import(ctx, &buf)
		if err != nil {
			t.Fatalf("%s: Import: %v", tc.name, err)
		}
		if len(imgs) != 1 || imgs[0].Name != tc.want {
			t.Errorf("%s: Import gave %+v, want one image named %s", tc.name, imgs, tc.want)
			continue
		}
		if imgs[0].Digest == "" || imgs[0].Size <= 0 {
			t.Errorf("%s: imported image lacks digest or size: %+v", tc.name, imgs[0])
		}
	}

	list, err := s.is.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var names []string
	for _, im := range list {
		names = append(names, im.Name)
	}
	for _, want := range []string{ImageOCI, ImageDocker, "docker.io/library/" + ImageShort, ImageEntrypoint} {
		if !slices.Contains(names, want) {
			t.Errorf("List lacks %s; it has %v", want, names)
		}
	}

	if _, err := s.is.Import(ctx, strings.NewReader("this is not a tar archive")); err == nil {
		t.Error("Import of garbage succeeded")
	}
}

type imageArchive struct{ img v1.Image }

func (s *suite) testEnsureImage(t *testing.T) {
	ctx := ctxFor(t)
	for _, ref := range []string{ImageOCI, ImageDocker, ImageShort, "docker.io/library/" + ImageShort} {
		start := time.Now()
		if err := s.d.EnsureImage(ctx, ref); err != nil {
			t.Errorf("EnsureImage(%s) of an imported image: %v", ref, err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("EnsureImage(%s) of a local image took %s", ref, took)
		}
	}
}

func (s *suite) testUnknownImage(t *testing.T) {
	// No registry is reachable in tests: the pull must fail, quickly, with
	// an error that names the image.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const ref = "drover.invalid/runtimetest/nothing:1"
	start := time.Now()
	err := s.d.EnsureImage(ctx, ref)
	if err == nil {
		t.Fatalf("EnsureImage(%s) succeeded", ref)
	}
	t.Logf("EnsureImage of an unknown image failed in %s: %v", time.Since(start).Round(time.Millisecond), err)
	if !strings.Contains(err.Error(), ref) {
		t.Errorf("error does not name the image %s: %v", ref, err)
	}
	if ctx.Err() != nil {
		t.Errorf("EnsureImage hung until the test's deadline")
	}

	sp := s.spec(t, ref, "true")
	if _, err := s.d.Start(ctxFor(t), sp); err == nil || !strings.Contains(err.Error(), ref) {
		t.Errorf("Start with an unknown image: got %v, want an error naming %s", err, ref)
	}
	if _, err := s.d.Inspect(ctxFor(t), sp.ID); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Inspect after failed Start: got %v, want ErrNotFound", err)
	}
}

func (s *suite) testExitCodeAndLogs(t *testing.T) {
	sp := s.spec(t, ImageOCI, "sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3")
	if code := s.run(t, sp); code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
	log := readLog(t, sp.LogPath, "to-stderr")
	mustContain(t, log, "to-stdout", "to-stderr")
}

func (s *suite) testInspect(t *testing.T) {
	ctx := ctxFor(t)
	sp := s.spec(t, ImageOCI, "sh", "-c", "echo started; sleep 60")
	sp.Labels["role"] = "web"
	before := time.Now().Add(-time.Second)
	st, err := s.d.Start(ctx, sp)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if st.ID != sp.ID || st.State != runtime.StateRunning || st.PID <= 0 {
		t.Errorf("Start returned %+v, want running with a PID", st)
	}
	st, err = s.d.Inspect(ctx, sp.ID)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	if st.State != runtime.StateRunning || st.PID <= 0 || st.StartedAt.Before(before) || st.Labels["role"] != "web" {
		t.Errorf("Inspect of a running container: %+v", st)
	}
	if err := s.d.Stop(ctx, sp.ID, "SIGKILL", 0); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	st, err = s.d.Inspect(ctx, sp.ID)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	if st.State != runtime.StateStopped || st.ExitCode != 137 || st.FinishedAt.Before(st.StartedAt) || st.PID != 0 {
		t.Errorf("Inspect of a killed container: %+v, want stopped, exit code 137, finished after start", st)
	}
}

func (s *suite) testNotFound(t *testing.T) {
	ctx := ctxFor(t)
	id := s.prefix + "never-started"
	if _, err := s.d.Inspect(ctx, id); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Inspect of an unknown container: got %v, want ErrNotFound", err)
	}
	if _, err := s.d.Wait(ctx, id); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Wait of an unknown container: got %v, want ErrNotFound", err)
	}
	if err := s.d.Stop(ctx, id, "", time.Second); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Stop of an unknown container: got %v, want ErrNotFound", err)
	}
}

func (s *suite) testDuplicateID(t *testing.T) {
	ctx := ctxFor(t)
	sp := s.spec(t, ImageOCI, "sleep", "60")
	if _, err := s.d.Start(ctx, sp); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if _, err := s.d.Start(ctx, sp); err == nil {
		t.Fatal("second Start of the same ID succeeded")
	}
	st, err := s.d.Inspect(ctx, sp.ID)
	if err != nil || st.State != runtime.StateRunning {
		t.Errorf("the first container suffered from the second Start: %+v, %v", st, err)
	}
}

func (s *suite) testConfig(t *testing.T) {
	const script = `echo "user=$(id -u):$(id -g) cwd=$(pwd) host=$(hostname) HOSTNAME=$HOSTNAME foo=$FOO imgvar=$IMGVAR path=$PATH"`
	for _, tc := range []struct {
		name   string
		img    string
		mutate func(*runtime.ContainerSpec)
		want   []string
	}{
		{"Defaults", ImageOCI, func(*runtime.ContainerSpec) {},
			[]string{"user=0:0 ", "cwd=/ ", "path=/usr/local/sbin:"}},
		{"ImageConfig", ImageEntrypoint, func(*runtime.ContainerSpec) {},
			[]string{"cwd=/home ", "imgvar=img "}},
		{"Env", ImageEntrypoint, func(sp *runtime.ContainerSpec) {
			sp.Env = []string{"FOO=bar", "IMGVAR=overridden", "PATH=/bin:/usr/bin"}
		}, []string{"foo=bar ", "imgvar=overridden ", "path=/bin:/usr/bin"}},
		{"UserName", ImageOCI, func(sp *runtime.ContainerSpec) { sp.User = "app" }, []string{"user=1000:1000 "}},
		{"UserNobody", ImageOCI, func(sp *runtime.ContainerSpec) { sp.User = "nobody" }, []string{"user=65534:65534 "}},
		{"UserUID", ImageOCI, func(sp *runtime.ContainerSpec) { sp.User = "1000" }, []string{"user=1000:1000 "}},
		{"UserUIDGID", ImageOCI, func(sp *runtime.ContainerSpec) { sp.User = "1000:0" }, []string{"user=1000:0 "}},
		{"UserUnknownUID", ImageOCI, func(sp *runtime.ContainerSpec) { sp.User = "4321" }, []string{"user=4321:0 "}},
		{"WorkingDir", ImageOCI, func(sp *runtime.ContainerSpec) { sp.WorkingDir = "/tmp" }, []string{"cwd=/tmp "}},
		{"Hostname", ImageOCI, func(sp *runtime.ContainerSpec) { sp.Hostname = "web-1" }, []string{"host=web-1 ", "HOSTNAME=web-1 "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp := s.spec(t, tc.img)
			sp.Entrypoint = []string{"sh", "-c", script}
			tc.mutate(&sp)
			code := s.run(t, sp)
			log := readLog(t, sp.LogPath, "user=")
			if code != 0 {
				t.Errorf("exit code %d; log:\n%s", code, log)
			}
			mustContain(t, log, tc.want...)
		})
	}

	t.Run("UnknownUserName", func(t *testing.T) {
		sp := s.spec(t, ImageOCI, "true")
		sp.User = "no-such-user"
		if _, err := s.d.Start(ctxFor(t), sp); err == nil {
			t.Error("Start with a user the image does not know succeeded")
		}
	})
}

func (s *suite) testEntrypointCommand(t *testing.T) {
	// The image: ENTRYPOINT ["echo", "ep"], CMD ["imgcmd"].
	for _, tc := range []struct {
		name                string
		entrypoint, command []string
		want                string
		notWant             string
	}{
		{"ImageBoth", nil, nil, "ep imgcmd", ""},
		{"CommandOnly", nil, []string{"mine"}, "ep mine", "imgcmd"},
		{"EntrypointOnlyDropsImageCmd", []string{"echo", "e2"}, nil, "e2", "imgcmd"},
		{"Both", []string{"echo", "e2"}, []string{"mine"}, "e2 mine", "imgcmd"},
		{"EmptyCommand", nil, []string{}, "ep", "imgcmd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp := s.spec(t, ImageEntrypoint)
			sp.Entrypoint, sp.Command = tc.entrypoint, tc.command
			if code := s.run(t, sp); code != 0 {
				t.Errorf("exit code %d", code)
			}
			log := readLog(t, sp.LogPath, tc.want)
			if tc.notWant != "" && strings.Contains(log, tc.notWant) {
				t.Errorf("log has %q, which should have been dropped:\n%s", tc.notWant, log)
			}
		})
	}
}

func (s *suite) testMounts(t *testing.T) {
	dir := t.TempDir()
	roFile := filepath.Join(t.TempDir(), "config.txt")
	if err := os.WriteFile(roFile, []byte("from-host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sp := s.spec(t, ImageOCI, "sh", "-c",
		"cat /etc/app.conf; echo written > /data/out; echo x > /etc/app.conf && echo ro-write-succeeded; "+
			"grep -q ' /scratch tmpfs ' /proc/mounts && echo tmpfs-mounted; echo done")
	sp.Mounts = []runtime.Mount{
		{Source: dir, Target: "/data"},
		{Source: roFile, Target: "/etc/app.conf", ReadOnly: true},
		{Type: "tmpfs", Target: "/scratch", Options: []string{"size=1m"}},
	}
	s.run(t, sp)
	log := readLog(t, sp.LogPath, "done")
	mustContain(t, log, "from-host", "tmpfs-mounted")
	if strings.Contains(log, "ro-write-succeeded") {
		t.Error("a read-only bind mount was writable")
	}
	if b, err := os.ReadFile(filepath.Join(dir, "out")); err != nil || string(b) != "written\n" {
		t.Errorf("file written through the rw bind mount: %q, %v", b, err)
	}

	bad := s.spec(t, ImageOCI, "true")
	bad.Mounts = []runtime.Mount{{Source: filepath.Join(dir, "missing"), Target: "/x"}}
	if _, err := s.d.Start(ctxFor(t), bad); err == nil {
		t.Error("Start with a missing bind mount source succeeded")
	}
}

func (s *suite) testNetNS(t *testing.T) {
	// Empty NetNSPath: a fresh namespace with only a loopback device.
	sp := s.spec(t, ImageOCI, "sh", "-c", "echo ifaces: $(ls /sys/class/net) end")
	s.run(t, sp)
	mustContain(t, readLog(t, sp.LogPath, "end"), "ifaces: lo end")

	// Joining a namespace: the test's own.
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var other string
	for _, i := range ifaces {
		if i.Name != "lo" {
			other = i.Name
			break
		}
	}
	if other == "" {
		t.Skip("the host has only a loopback device")
	}
	sp = s.spec(t, ImageOCI, "sh", "-c", "echo ifaces: $(ls /sys/class/net) end")
	sp.NetNSPath = fmt.Sprintf("/proc/%d/ns/net", os.Getpid())
	s.run(t, sp)
	mustContain(t, readLog(t, sp.LogPath, "end"), other)
}

func (s *suite) testBadNetNS(t *testing.T) {
	notNS := filepath.Join(t.TempDir(), "not-a-netns")
	if err := os.WriteFile(notNS, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{
		"Missing":   filepath.Join(t.TempDir(), "missing"),
		"NotANetNS": notNS,
	} {
		t.Run(name, func(t *testing.T) {
			ctx := ctxFor(t)
			sp := s.spec(t, ImageOCI, "true")
			sp.NetNSPath = path
			if _, err := s.d.Start(ctx, sp); err == nil {
				t.Fatalf("Start with NetNSPath %s succeeded", path)
			}
			if _, err := s.d.Inspect(ctx, sp.ID); !errors.Is(err, runtime.ErrNotFound) {
				t.Errorf("after a failed Start, Inspect gave %v, want ErrNotFound (no record left)", err)
			}
			all, err := s.d.Recover(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, st := range all {
				if st.ID == sp.ID {
					t.Errorf("Recover lists the container of a failed Start: %+v", st)
				}
			}
			// The ID is free again.
			sp.NetNSPath = ""
			if _, err := s.d.Start(ctx, sp); err != nil {
				t.Errorf("Start again after a failed Start: %v", err)
			}
		})
	}
}

// startReady starts a container running script and waits for it to print
// "ready".
func (s *suite) startReady(t *testing.T, sp runtime.ContainerSpec) {
	t.Helper()
	if _, err := s.d.Start(ctxFor(t), sp); err != nil {
		t.Fatalf("Start: %v", err)
	}
	readLog(t, sp.LogPath, "ready")
}

func (s *suite) testStop(t *testing.T) {
	t.Run("GraceThenKill", func(t *testing.T) {
		ctx := ctxFor(t)
		sp := s.spec(t, ImageOCI, "sh", "-c", `trap "" TERM; echo ready; while :; do sleep 0.1; done`)
		s.startReady(t, sp)
		ch, err := s.d.Wait(ctx, sp.ID)
		if err != nil {
			t.Fatal(err)
		}
		const grace = time.Second
		start := time.Now()
		if err := s.d.Stop(ctx, sp.ID, "", grace); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		took := time.Since(start)
		if took < grace-50*time.Millisecond || took > grace+10*time.Second {
			t.Errorf("Stop of a container ignoring SIGTERM took %s, want about the grace period %s", took, grace)
		}
		if es := <-ch; es.Code != 137 {
			t.Errorf("exit code %d, want 137 (SIGKILL)", es.Code)
		}
	})
	t.Run("SignalName", func(t *testing.T) {
		for _, sig := range []string{"SIGUSR1", "USR1", "10"} {
			ctx := ctxFor(t)
			sp := s.spec(t, ImageOCI, "sh", "-c", `trap "exit 7" USR1; echo ready; while :; do sleep 0.1; done`)
			s.startReady(t, sp)
			start := time.Now()
			if err := s.d.Stop(ctx, sp.ID, sig, 30*time.Second); err != nil {
				t.Fatalf("Stop(%s): %v", sig, err)
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("Stop(%s) took %s: the signal was not delivered", sig, took)
			}
			st, err := s.d.Inspect(ctx, sp.ID)
			if err != nil || st.State != runtime.StateStopped || st.ExitCode != 7 {
				t.Errorf("after Stop(%s): %+v, %v; want stopped with code 7", sig, st, err)
			}
		}
	})
	t.Run("SpecStopSignal", func(t *testing.T) {
		ctx := ctxFor(t)
		sp := s.spec(t, ImageOCI, "sh", "-c", `trap "exit 9" QUIT; echo ready; while :; do sleep 0.1; done`)
		sp.StopSignal = "SIGQUIT"
		s.startReady(t, sp)
		if err := s.d.Stop(ctx, sp.ID, "", 30*time.Second); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if st, err := s.d.Inspect(ctx, sp.ID); err != nil || st.ExitCode != 9 {
			t.Errorf("after Stop with the spec's stop signal: %+v, %v; want exit code 9", st, err)
		}
	})
	t.Run("Exited", func(t *testing.T) {
		sp := s.spec(t, ImageOCI, "true")
		s.run(t, sp)
		if err := s.d.Stop(ctxFor(t), sp.ID, "", time.Second); err != nil {
			t.Errorf("Stop of an exited container: %v", err)
		}
	})
	t.Run("BadSignal", func(t *testing.T) {
		sp := s.spec(t, ImageOCI, "sleep", "60")
		s.startOnly(t, sp)
		if err := s.d.Stop(ctxFor(t), sp.ID, "SIGNOPE", time.Second); err == nil {
			t.Error("Stop with an unknown signal name succeeded")
		}
	})
}

// startOnly starts a container without waiting for output.
func (s *suite) startOnly(t *testing.T, sp runtime.ContainerSpec) {
	t.Helper()
	if _, err := s.d.Start(ctxFor(t), sp); err != nil {
		t.Fatalf("Start: %v", err)
	}
}

func (s *suite) testDestroy(t *testing.T) {
	ctx := ctxFor(t)
	sp := s.spec(t, ImageOCI, "sleep", "60")
	s.startOnly(t, sp)
	ch, err := s.d.Wait(ctx, sp.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.d.Destroy(ctx, sp.ID); err != nil {
		t.Fatalf("Destroy of a running container: %v", err)
	}
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Error("Wait did not yield after Destroy")
	}
	if _, err := s.d.Inspect(ctx, sp.ID); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Inspect after Destroy: got %v, want ErrNotFound", err)
	}
	if err := s.d.Destroy(ctx, sp.ID); err != nil {
		t.Errorf("second Destroy: %v", err)
	}
	if err := s.d.Destroy(ctx, s.prefix+"never-existed"); err != nil {
		t.Errorf("Destroy of a container that never existed: %v", err)
	}
	// The ID can be used again.
	sp.Command = []string{"true"}
	if code := s.run(t, sp); code != 0 {
		t.Errorf("container reusing a destroyed ID exited %d", code)
	}
}

func (s *suite) testAdoption(t *testing.T) {
	ctx := ctxFor(t)
	d1, _ := s.newDriver(t)
	sp := s.spec(t, ImageOCI, "sh", "-c", "echo ready; sleep 60")
	sp.Labels["adopt"] = "me"
	if _, err := d1.Start(ctx, sp); err != nil {
		t.Fatalf("Start: %v", err)
	}
	readLog(t, sp.LogPath, "ready")
	if c, ok := d1.(io.Closer); ok {
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}

	d2, _ := s.newDriver(t)
	all, err := d2.Recover(ctx)
	if err != nil {
		t.Fatalf("Recover: %v", err)
	}
	var found *runtime.Status
	for i := range all {
		if all[i].ID == sp.ID {
			found = &all[i]
		}
	}
	if found == nil {
		t.Fatalf("Recover does not list %s; it gave %+v", sp.ID, all)
	}
	if found.State != runtime.StateRunning || found.PID <= 0 || found.Labels["adopt"] != "me" || found.StartedAt.IsZero() {
		t.Errorf("recovered container: %+v, want running with its PID, labels and start time", *found)
	}
	ch, err := d2.Wait(ctx, sp.ID)
	if err != nil {
		t.Fatalf("Wait on an adopted container: %v", err)
	}
	select {
	case es := <-ch:
		t.Fatalf("Wait yielded before the container stopped: %+v", es)
	case <-time.After(100 * time.Millisecond):
	}
	// sh as PID 1 ignores SIGTERM: the kill after the grace period ends it.
	if err := d2.Stop(ctx, sp.ID, "", 200*time.Millisecond); err != nil {
		t.Fatalf("Stop of an adopted container: %v", err)
	}
	select {
	case es := <-ch:
		if es.Code != 137 || es.Err != nil {
			t.Errorf("adopted container's exit: %+v, want code 137", es)
		}
	case <-ctx.Done():
		t.Fatal("Wait on an adopted container never yielded")
	}
	if err := d2.Destroy(ctx, sp.ID); err != nil {
		t.Errorf("Destroy of an adopted container: %v", err)
	}
}
