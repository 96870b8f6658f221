package fake

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/runtime"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func spec(id, image string) runtime.ContainerSpec {
	return runtime.ContainerSpec{ID: id, Image: image, Labels: map[string]string{"task": id}}
}

// waitExit reads one exit status or fails after a while.
func waitExit(t *testing.T, ch <-chan runtime.ExitStatus) runtime.ExitStatus {
	t.Helper()
	select {
	case es := <-ch:
		return es
	case <-time.After(5 * time.Second):
		t.Fatal("Wait never yielded")
		return runtime.ExitStatus{}
	}
}

func TestLifecycle(t *testing.T) {
	ctx := ctxT(t)
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	rt := New(Options{Now: func() time.Time { return now }})
	d := rt.Driver()

	st, err := d.Start(ctx, spec("c1", "busybox"))
	if err != nil {
		t.Fatal(err)
	}
	if st.State != runtime.StateRunning || st.PID <= 0 || !st.StartedAt.Equal(now) || st.Labels["task"] != "c1" {
		t.Fatalf("Start gave %+v", st)
	}
	if _, err := d.Start(ctx, spec("c1", "busybox")); err == nil {
		t.Fatal("a second Start of the same ID succeeded")
	}
	ch, err := d.Wait(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case es := <-ch:
		t.Fatalf("Wait yielded %+v while the container runs", es)
	default:
	}
	if err := d.Stop(ctx, "c1", "", time.Second); err != nil {
		t.Fatal(err)
	}
	if es := waitExit(t, ch); es.Code != 143 || es.Err != nil {
		t.Errorf("exit after SIGTERM: %+v, want code 143", es)
	}
	st, err = d.Inspect(ctx, "c1")
	if err != nil || st.State != runtime.StateStopped || st.ExitCode != 143 || st.PID != 0 {
		t.Errorf("Inspect after Stop: %+v, %v", st, err)
	}
	// Waiting on an exited container answers at once.
	ch, _ = d.Wait(ctx, "c1")
	if es := waitExit(t, ch); es.Code != 143 {
		t.Errorf("late Wait: %+v", es)
	}
	if err := d.Stop(ctx, "c1", "", time.Second); err != nil {
		t.Errorf("Stop of an exited container: %v", err)
	}
	for i := 0; i < 2; i++ {
		if err := d.Destroy(ctx, "c1"); err != nil {
			t.Fatalf("Destroy #%d: %v", i+1, err)
		}
	}
	if _, err := d.Inspect(ctx, "c1"); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Inspect after Destroy: %v, want ErrNotFound", err)
	}
	if _, err := d.Start(ctx, spec("c1", "busybox")); err != nil {
		t.Errorf("the ID of a destroyed container cannot be used again: %v", err)
	}
	if got := rt.Calls("Start"); got != 3 {
		t.Errorf("Calls(Start) = %d, want 3", got)
	}
}

func TestNotFound(t *testing.T) {
	ctx := ctxT(t)
	d := New(Options{}).Driver()
	if _, err := d.Inspect(ctx, "nope"); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Inspect: %v", err)
	}
	if _, err := d.Wait(ctx, "nope"); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Wait: %v", err)
	}
	if err := d.Stop(ctx, "nope", "", 0); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Stop: %v", err)
	}
	if err := d.Destroy(ctx, "nope"); err != nil {
		t.Errorf("Destroy of a missing container: %v", err)
	}
}

func TestScriptedFailures(t *testing.T) {
	script := Script{Images: map[string]Behavior{
		"bad/start:1":                         {StartError: "exec format error"},
		"flaky:1":                             {StartError: "port in use", FailStarts: 2},
		"nopull:1":                            {PullError: "manifest unknown"},
		"docker.io/library/normalized:latest": {StartError: "by normalized name"},
	}}
	for _, tc := range []struct {
		name    string
		image   string
		starts  int    // attempts
		wantOK  []bool // per attempt
		wantErr string
	}{
		{"StartErrorEveryTime", "bad/start:1", 3, []bool{false, false, false}, "exec format error"},
		{"FailFirstStarts", "flaky:1", 4, []bool{false, false, true, true}, "port in use"},
		{"PullError", "nopull:1", 1, []bool{false}, "nopull:1"},
		{"ByNormalizedName", "normalized", 1, []bool{false}, "by normalized name"},
		{"OtherImagesFine", "good:1", 2, []bool{true, true}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			rt := New(Options{Script: script})
			d := rt.Driver()
			for i := 0; i < tc.starts; i++ {
				id := fmt.Sprintf("c%d", i)
				_, err := d.Start(ctx, spec(id, tc.image))
				if (err == nil) != tc.wantOK[i] {
					t.Fatalf("Start #%d: err %v, want success %v", i+1, err, tc.wantOK[i])
				}
				if err != nil {
					if !strings.Contains(err.Error(), tc.wantErr) {
						t.Errorf("Start #%d: %v, want it to say %q", i+1, err, tc.wantErr)
					}
					if _, err := d.Inspect(ctx, id); !errors.Is(err, runtime.ErrNotFound) {
						t.Errorf("a failed Start left a record: %v", err)
					}
				}
			}
		})
	}
}

func TestImages(t *testing.T) {
	ctx := ctxT(t)
	rt := New(Options{Script: Script{Offline: true}, Preload: []string{"busybox"}})
	d := rt.Driver()
	for _, ref := range []string{"busybox", "busybox:latest", "docker.io/library/busybox:latest"} {
		if err := d.EnsureImage(ctx, ref); err != nil {
			t.Errorf("EnsureImage(%s) of a preloaded image: %v", ref, err)
		}
	}
	err := d.EnsureImage(ctx, "drover.invalid/nothing:1")
	if !errors.Is(err, runtime.ErrNotFound) || !strings.Contains(err.Error(), "drover.invalid/nothing:1") {
		t.Errorf("offline pull: %v, want ErrNotFound naming the image", err)
	}
	if _, err := d.Start(ctx, spec("c", "drover.invalid/nothing:1")); err == nil {
		t.Error("Start of an image that cannot be pulled succeeded")
	}
	if err := d.EnsureImage(ctx, "Not A Reference"); err == nil {
		t.Error("EnsureImage of an invalid reference succeeded")
	}

	const latency = 300 * time.Millisecond
	rt.SetScript(Script{Default: Behavior{PullLatency: latency}})
	start := time.Now()
	if err := d.EnsureImage(ctx, "app:2"); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < latency {
		t.Errorf("pull took %s, want the script's %s", took, latency)
	}
	start = time.Now()
	if err := d.EnsureImage(ctx, "docker.io/library/app:2"); err != nil || time.Since(start) >= latency {
		t.Errorf("EnsureImage of a pulled image: %v after %s, want no pull", err, time.Since(start))
	}
	list, _ := d.List(ctx)
	var names []string
	for _, im := range list {
		names = append(names, im.Name)
	}
	if fmt.Sprint(names) != "[docker.io/library/app:2 docker.io/library/busybox:latest]" {
		t.Errorf("List: %v", names)
	}
}

func TestExitAfter(t *testing.T) {
	ctx := ctxT(t)
	var exits atomic.Int32
	var lastCode atomic.Int32
	rt := New(Options{
		Script: Script{Default: Behavior{ExitAfter: 20 * time.Millisecond, ExitCode: 3}},
		OnExit: func(id string, es runtime.ExitStatus) { exits.Add(1); lastCode.Store(int32(es.Code)) },
	})
	d := rt.Driver()
	if _, err := d.Start(ctx, spec("c", "job")); err != nil {
		t.Fatal(err)
	}
	ch, _ := d.Wait(ctx, "c")
	if es := waitExit(t, ch); es.Code != 3 || es.ExitedAt.IsZero() {
		t.Errorf("scripted exit: %+v, want code 3", es)
	}
	// OnExit runs after the waiters are told (outside the driver's lock).
	for deadline := time.Now().Add(5 * time.Second); exits.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if exits.Load() != 1 || lastCode.Load() != 3 {
		t.Errorf("OnExit called %d times (last code %d), want once with 3", exits.Load(), lastCode.Load())
	}
	// A destroyed container's timer must not end its successor.
	if err := d.Destroy(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	rt.SetScript(Script{Default: Behavior{ExitAfter: 50 * time.Millisecond}})
	if _, err := d.Start(ctx, spec("c", "job")); err != nil {
		t.Fatal(err)
	}
	if err := d.Destroy(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	rt.SetScript(Script{})
	if _, err := d.Start(ctx, spec("c", "job")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if st, _ := d.Inspect(ctx, "c"); st.State != runtime.StateRunning {
		t.Errorf("a stale timer ended the new container: %+v", st)
	}
}

func TestStartLatency(t *testing.T) {
	ctx := ctxT(t)
	rt := New(Options{Script: Script{Default: Behavior{StartLatency: 100 * time.Millisecond}}})
	d := rt.Driver()

	done := make(chan error, 1)
	go func() { _, err := d.Start(ctx, spec("slow", "app")); done <- err }()
	deadline := time.Now().Add(2 * time.Second)
	for {
		st, err := d.Inspect(ctx, "slow")
		if err == nil {
			if st.State != runtime.StateCreated {
				t.Errorf("during the start latency: %+v, want created", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the starting container never showed up")
		}
		time.Sleep(time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Destroyed while starting: Start fails and nothing is left.
	go func() { _, err := d.Start(ctx, spec("gone", "app")); done <- err }()
	for {
		if _, err := d.Inspect(ctx, "gone"); err == nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := d.Destroy(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Error("Start of a container destroyed while starting succeeded")
	}
	if _, err := d.Inspect(ctx, "gone"); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("after destroy during start: %v", err)
	}

	// A cancelled start leaves nothing.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, err := d.Start(cctx, spec("cut", "app")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled Start: %v", err)
	}
	if _, err := d.Inspect(ctx, "cut"); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("after a cancelled Start: %v", err)
	}
}

func TestSignals(t *testing.T) {
	for _, tc := range []struct {
		name       string
		stopSignal string // in the spec
		signal     string // passed to Stop
		ignore     bool
		grace      time.Duration
		wantCode   int
		minTook    time.Duration
	}{
		{"DefaultTERM", "", "", false, time.Second, 143, 0},
		{"SpecStopSignal", "SIGQUIT", "", false, time.Second, 131, 0},
		{"ByName", "", "USR1", false, time.Second, 138, 0},
		{"ByNumber", "", "10", false, time.Second, 138, 0},
		{"IgnoredThenKilled", "", "", true, 50 * time.Millisecond, 137, 50 * time.Millisecond},
		{"IgnoredNoGrace", "", "", true, 0, 137, 0},
		{"KillIsNeverIgnored", "", "SIGKILL", true, time.Minute, 137, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			d := New(Options{Script: Script{Default: Behavior{IgnoreStop: tc.ignore}}}).Driver()
			sp := spec("c", "app")
			sp.StopSignal = tc.stopSignal
			if _, err := d.Start(ctx, sp); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if err := d.Stop(ctx, "c", tc.signal, tc.grace); err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			st, _ := d.Inspect(ctx, "c")
			if st.State != runtime.StateStopped || st.ExitCode != tc.wantCode {
				t.Errorf("after Stop: %+v, want stopped with %d", st, tc.wantCode)
			}
			if took < tc.minTook || took > tc.minTook+2*time.Second {
				t.Errorf("Stop took %s, want about %s", took, tc.minTook)
			}
		})
	}

	ctx := ctxT(t)
	d := New(Options{Script: Script{Default: Behavior{IgnoreStop: true}}}).Driver()
	if _, err := d.Start(ctx, spec("c", "app")); err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(ctx, "c", "SIGNOPE", time.Second); err == nil {
		t.Error("Stop with an unknown signal succeeded")
	}
	for _, sig := range []string{"SIGTERM", "WINCH"} {
		if err := d.Kill(ctx, "c", sig); err != nil {
			t.Fatal(err)
		}
		if st, _ := d.Inspect(ctx, "c"); st.State != runtime.StateRunning {
			t.Errorf("Kill %s ended a container that ignores it: %+v", sig, st)
		}
	}
	if err := d.Kill(ctx, "c", ""); err != nil {
		t.Fatal(err)
	}
	if st, _ := d.Inspect(ctx, "c"); st.ExitCode != 137 {
		t.Errorf("Kill without a signal: %+v, want SIGKILL's 137", st)
	}
	if err := d.Kill(ctx, "c", ""); err == nil {
		t.Error("Kill of an exited container succeeded")
	}
}

func TestRecoverAfterClose(t *testing.T) {
	ctx := ctxT(t)
	rt := New(Options{})
	d1 := rt.Driver()
	sp := spec("c", "app")
	sp.Labels["adopt"] = "me"
	if _, err := d1.Start(ctx, sp); err != nil {
		t.Fatal(err)
	}
	ch, _ := d1.Wait(ctx, "c")
	if err := d1.Close(); err != nil {
		t.Fatal(err)
	}
	if es := waitExit(t, ch); !errors.Is(es.Err, ErrClosed) {
		t.Errorf("Wait through a closed driver: %+v, want ErrClosed", es)
	}
	if _, err := d1.Inspect(ctx, "c"); !errors.Is(err, ErrClosed) {
		t.Errorf("call on a closed driver: %v", err)
	}

	d2 := rt.Driver()
	all, err := d2.Recover(ctx)
	if err != nil || len(all) != 1 || all[0].State != runtime.StateRunning || all[0].Labels["adopt"] != "me" || all[0].PID <= 0 {
		t.Fatalf("Recover: %+v, %v", all, err)
	}
	ch, _ = d2.Wait(ctx, "c")
	if err := rt.Crash("c", 139); err != nil {
		t.Fatal(err)
	}
	if es := waitExit(t, ch); es.Code != 139 {
		t.Errorf("exit after a crash: %+v", es)
	}
	if rt.Running() != 0 {
		t.Errorf("Running() = %d after the crash", rt.Running())
	}
}

func TestOperations(t *testing.T) {
	ctx := ctxT(t)
	hcheck := &api.Healthcheck{Test: []string{"CMD", "true"}, Retries: 2}
	rt := New(Options{Script: Script{Default: Behavior{
		ExecExitCode: 4, ExecOutput: "hello\n", Healthcheck: hcheck,
		Stats: runtime.Stats{MemoryBytes: 42 << 20, CPUNanos: 7},
	}}})
	d := rt.Driver()
	sp := spec("c", "app")
	sp.Entrypoint, sp.Command = []string{"/bin/app"}, []string{"serve"}
	if _, err := d.Start(ctx, sp); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	code, err := d.Exec(ctx, "c", runtime.ExecSpec{Cmd: []string{"sh"}, Stdout: &out})
	if err != nil || code != 4 || out.String() != "hello\n" {
		t.Errorf("Exec: %d %q %v", code, out.String(), err)
	}
	if st, err := d.Stats(ctx, "c"); err != nil || st.MemoryBytes != 42<<20 || st.Time.IsZero() {
		t.Errorf("Stats: %+v %v", st, err)
	}
	if ps, err := d.Top(ctx, "c"); err != nil || len(ps) != 1 || ps[0].Command != "/bin/app serve" {
		t.Errorf("Top: %+v %v", ps, err)
	}
	if err := d.Pause(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if st, _ := d.Inspect(ctx, "c"); st.State != runtime.StatePaused {
		t.Errorf("after Pause: %+v", st)
	}
	if err := d.Pause(ctx, "c"); err == nil {
		t.Error("second Pause succeeded")
	}
	if err := d.Resume(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if err := d.Resume(ctx, "c"); err == nil {
		t.Error("Resume of a running container succeeded")
	}

	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	_ = tw.WriteHeader(&tar.Header{Name: "conf/", Typeflag: tar.TypeDir, Mode: 0o755})
	_ = tw.WriteHeader(&tar.Header{Name: "conf/a.txt", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3})
	_, _ = tw.Write([]byte("abc"))
	_ = tw.Close()
	if err := d.CopyTo(ctx, "c", "/etc", &in); err != nil {
		t.Fatal(err)
	}
	var back bytes.Buffer
	if err := d.CopyFrom(ctx, "c", "/etc/conf", &back); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&back)
	var got []string
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		b, _ := io.ReadAll(tr)
		got = append(got, hdr.Name+"="+string(b))
	}
	if fmt.Sprint(got) != "[conf/= conf/a.txt=abc]" {
		t.Errorf("CopyFrom gave %v", got)
	}
	if err := d.CopyFrom(ctx, "c", "/nope", io.Discard); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("CopyFrom of a missing path: %v", err)
	}

	h, err := d.ImageHealthcheck(ctx, "app")
	if err != nil || h == nil || h.Retries != 2 {
		t.Errorf("ImageHealthcheck: %+v %v", h, err)
	}
	if err := d.SeedVolume(ctx, "app", "/data", t.TempDir()); err != nil {
		t.Errorf("SeedVolume: %v", err)
	}
	if _, err := d.ImageHealthcheck(ctx, "never-pulled"); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("ImageHealthcheck of a missing image: %v", err)
	}

	if err := d.Stop(ctx, "c", "KILL", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Exec(ctx, "c", runtime.ExecSpec{Cmd: []string{"true"}}); err == nil {
		t.Error("Exec in a stopped container succeeded")
	}
	if _, err := d.Stats(ctx, "c"); err == nil {
		t.Error("Stats of a stopped container succeeded")
	}
}

// archive writes a tar with the given files.
func archive(t *testing.T, files map[string]string) *bytes.Buffer {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for name, content := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(content))}); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write([]byte(content))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &b
}

func TestImport(t *testing.T) {
	ctx := ctxT(t)
	d := New(Options{Script: Script{Offline: true}}).Driver()
	for _, tc := range []struct {
		name    string
		files   map[string]string
		want    string // image names, or the error's words
		wantErr bool
	}{
		{"OCI", map[string]string{"oci-layout": "{}", "index.json": `{"manifests":[{"annotations":{"io.containerd.image.name":"drover.local/a:1"}}]}`},
			"[drover.local/a:1]", false},
		{"OCIRefName", map[string]string{"index.json": `{"manifests":[{"annotations":{"org.opencontainers.image.ref.name":"short:v1"}}]}`},
			"[docker.io/library/short:v1]", false},
		{"OCIBareTag", map[string]string{"index.json": `{"manifests":[{"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}`},
			"names no image", true},
		{"Docker", map[string]string{"manifest.json": `[{"RepoTags":["b:2","drover.local/c:3"]}]`},
			"[docker.io/library/b:2 drover.local/c:3]", false},
		{"NotAnArchive", nil, "importing image archive", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r io.Reader = strings.NewReader("this is not a tar archive, not even close; it is long enough to have a header's size")
			if tc.files != nil {
				r = archive(t, tc.files)
			}
			imgs, err := d.Import(ctx, r)
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Import: %v, want an error saying %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, im := range imgs {
				names = append(names, im.Name)
				if !strings.HasPrefix(im.Digest, "sha256:") || im.Size <= 0 {
					t.Errorf("image without digest or size: %+v", im)
				}
				if err := d.EnsureImage(ctx, im.Name); err != nil {
					t.Errorf("EnsureImage of an imported image (offline): %v", err)
				}
			}
			if fmt.Sprint(names) != tc.want {
				t.Errorf("Import named %v, want %s", names, tc.want)
			}
		})
	}
}

// TestConcurrent runs many containers' lives at once; with -race it checks
// the locking.
func TestConcurrent(t *testing.T) {
	ctx := ctxT(t)
	var exits atomic.Int64
	rt := New(Options{
		Script: Script{Images: map[string]Behavior{"short:1": {ExitAfter: time.Millisecond}}},
		OnExit: func(string, runtime.ExitStatus) { exits.Add(1) },
	})
	const workers, each = 16, 100
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := rt.Driver()
			for i := 0; i < each; i++ {
				id := fmt.Sprintf("w%d-%d", w, i)
				image := "long:1"
				if i%2 == 0 {
					image = "short:1"
				}
				if _, err := d.Start(ctx, spec(id, image)); err != nil {
					errs <- err
					return
				}
				ch, err := d.Wait(ctx, id)
				if err != nil {
					errs <- err
					return
				}
				if image == "long:1" {
					if err := d.Stop(ctx, id, "", time.Second); err != nil {
						errs <- err
						return
					}
				}
				<-ch
				if i%4 == 0 {
					if err := d.Destroy(ctx, id); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := exits.Load(); got != workers*each {
		t.Errorf("%d exits reported, want %d", got, workers*each)
	}
	if n := len(rt.Containers()); n != workers*each*3/4 {
		t.Errorf("%d containers left, want %d", n, workers*each*3/4)
	}
}

func TestWaitOnAStartCutShort(t *testing.T) {
	ctx := ctxT(t)
	d := New(Options{Script: Script{Default: Behavior{StartLatency: time.Second}}}).Driver()
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { _, err := d.Start(sctx, spec("c", "app")); done <- err }()
	var ch <-chan runtime.ExitStatus
	for ch == nil {
		if c, err := d.Wait(ctx, "c"); err == nil {
			ch = c
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Start: %v", err)
	}
	if es := waitExit(t, ch); es.Err == nil {
		t.Errorf("Wait on a container whose start was cut short: %+v, want an error", es)
	}
}
