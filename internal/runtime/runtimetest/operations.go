package runtimetest

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/imagebuild"
	"github.com/drover-org/drover/internal/runtime"
)

// healthTest is ImageHealth's HEALTHCHECK.
var healthTest = imagebuild.Healthcheck{
	Test:        []string{"CMD-SHELL", "test -e /tmp/healthy"},
	Interval:    2 * time.Second,
	Timeout:     time.Second,
	StartPeriod: 3 * time.Second,
	Retries:     4,
}

func (s *suite) execer(t *testing.T) runtime.Execer {
	x, ok := s.d.(runtime.Execer)
	if !ok {
		t.Skip("the driver does not implement runtime.Execer")
	}
	return x
}

func (s *suite) operator(t *testing.T) runtime.Operator {
	o, ok := s.d.(runtime.Operator)
	if !ok {
		t.Skip("the driver does not implement runtime.Operator")
	}
	return o
}

func (s *suite) inspector(t *testing.T) runtime.ImageInspector {
	ii, ok := s.d.(runtime.ImageInspector)
	if !ok {
		t.Skip("the driver does not implement runtime.ImageInspector")
	}
	return ii
}

// startSleeper starts a container that prints "ready" and sleeps.
func (s *suite) startSleeper(t *testing.T) runtime.ContainerSpec {
	t.Helper()
	sp := s.spec(t, ImageOCI, "sh", "-c", "echo ready; exec sleep 60")
	s.startReady(t, sp)
	return sp
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{mu: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.String()
}

func (s *suite) testExec(t *testing.T) {
	x := s.execer(t)
	sp := s.startSleeper(t)

	t.Run("OutputAndExitCode", func(t *testing.T) {
		out, errOut := newSyncBuffer(), newSyncBuffer()
		code, err := x.Exec(ctxFor(t), sp.ID, runtime.ExecSpec{
			Cmd:    []string{"sh", "-c", "echo to-out; echo to-err >&2; exit 5"},
			Stdout: out, Stderr: errOut,
		})
		if err != nil {
			t.Fatalf("Exec: %v", err)
		}
		if code != 5 || out.String() != "to-out\n" || errOut.String() != "to-err\n" {
			t.Errorf("Exec gave code %d, stdout %q, stderr %q; want 5, to-out, to-err", code, out, errOut)
		}
	})
	t.Run("EnvUserDirStdin", func(t *testing.T) {
		out := newSyncBuffer()
		code, err := x.Exec(ctxFor(t), sp.ID, runtime.ExecSpec{
			Cmd:        []string{"sh", "-c", `echo "$(id -u):$(id -g) $(pwd) $FOO $(cat)"`},
			Env:        []string{"FOO=bar"},
			User:       "app",
			WorkingDir: "/tmp",
			Stdin:      strings.NewReader("from-stdin"),
			Stdout:     out,
		})
		if err != nil || code != 0 {
			t.Fatalf("Exec: %d, %v", code, err)
		}
		if got := out.String(); got != "1000:1000 /tmp bar from-stdin\n" {
			t.Errorf("Exec output %q, want \"1000:1000 /tmp bar from-stdin\"", got)
		}
	})
	t.Run("Tty", func(t *testing.T) {
		out := newSyncBuffer()
		resize := make(chan runtime.TermSize, 1)
		resize <- runtime.TermSize{Width: 123, Height: 45}
		code, err := x.Exec(ctxFor(t), sp.ID, runtime.ExecSpec{
			// The resize arrives once the process runs.
			Cmd:    []string{"sh", "-c", "test -t 1 && echo is-a-tty; echo to-err >&2; sleep 0.5; stty size"},
			Tty:    true,
			Stdout: out,
			Resize: resize,
		})
		if err != nil || code != 0 {
			t.Fatalf("Exec: %d, %v", code, err)
		}
		got := out.String()
		mustContain(t, got, "is-a-tty", "to-err", "45 123")
	})
	t.Run("MissingCommand", func(t *testing.T) {
		code, err := x.Exec(ctxFor(t), sp.ID, runtime.ExecSpec{Cmd: []string{"/no/such/binary"}})
		if err == nil && code == 0 {
			t.Error("Exec of a missing binary succeeded")
		}
	})
	t.Run("NotRunning", func(t *testing.T) {
		done := s.spec(t, ImageOCI, "true")
		s.run(t, done)
		_, err := x.Exec(ctxFor(t), done.ID, runtime.ExecSpec{Cmd: []string{"true"}})
		if err == nil || !strings.Contains(err.Error(), "not running") {
			t.Errorf("Exec in an exited container: %v, want an error saying it is not running", err)
		}
		if _, err := x.Exec(ctxFor(t), s.prefix+"nope", runtime.ExecSpec{Cmd: []string{"true"}}); !errors.Is(err, runtime.ErrNotFound) {
			t.Errorf("Exec in an unknown container: %v, want ErrNotFound", err)
		}
	})
}

func (s *suite) testStats(t *testing.T) {
	o, x := s.operator(t), s.execer(t)
	sp := s.spec(t, ImageOCI, "sh", "-c", "echo ready; exec sleep 60")
	sp.Settings.MemLimit = 256 << 20
	s.startReady(t, sp)
	ctx := ctxFor(t)
	before, err := o.Stats(ctx, sp.ID)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if before.MemoryLimit != 256<<20 || before.PIDs < 1 || before.CPUNanos == 0 || before.Time.IsZero() {
		t.Errorf("Stats of a fresh container: %+v; want the 256 MiB limit, a PID, some CPU time", before)
	}
	// 64 MiB in /dev/shm is memory the container's cgroup pays for.
	if code, err := x.Exec(ctx, sp.ID, runtime.ExecSpec{Cmd: []string{"dd", "if=/dev/zero", "of=/dev/shm/fill", "bs=1M", "count=64"}}); err != nil || code != 0 {
		t.Fatalf("filling /dev/shm: %d, %v", code, err)
	}
	after, err := o.Stats(ctx, sp.ID)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if after.MemoryBytes < before.MemoryBytes+48<<20 {
		t.Errorf("memory went from %d to %d after writing 64 MiB to /dev/shm", before.MemoryBytes, after.MemoryBytes)
	}
	if after.CPUNanos <= before.CPUNanos {
		t.Errorf("CPU time did not grow: %d then %d", before.CPUNanos, after.CPUNanos)
	}
	if _, err := o.Stats(ctx, s.prefix+"nope"); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Stats of an unknown container: %v, want ErrNotFound", err)
	}
}

func (s *suite) testPauseResume(t *testing.T) {
	o := s.operator(t)
	ctx := ctxFor(t)
	sp := s.spec(t, ImageOCI, "sh", "-c", "echo ready; i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.02; done")
	s.startReady(t, sp)
	size := func() int64 {
		fi, err := os.Stat(sp.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	if err := o.Pause(ctx, sp.ID); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	if st, err := s.d.Inspect(ctx, sp.ID); err != nil || st.State != runtime.StatePaused {
		t.Errorf("Inspect of a paused container: %+v, %v; want paused", st, err)
	}
	time.Sleep(100 * time.Millisecond) // the last output reaches the log
	n := size()
	time.Sleep(300 * time.Millisecond)
	if m := size(); m != n {
		t.Errorf("a paused container wrote %d bytes", m-n)
	}
	if err := o.Resume(ctx, sp.ID); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for size() == n {
		if time.Now().After(deadline) {
			t.Fatal("the container wrote nothing after Resume")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st, err := s.d.Inspect(ctx, sp.ID); err != nil || st.State != runtime.StateRunning {
		t.Errorf("Inspect of a resumed container: %+v, %v; want running", st, err)
	}
}

func (s *suite) testKill(t *testing.T) {
	o := s.operator(t)
	ctx := ctxFor(t)
	sp := s.spec(t, ImageOCI, "sh", "-c", `trap "exit 7" USR1; echo ready; while :; do sleep 0.1; done`)
	s.startReady(t, sp)
	ch, err := s.d.Wait(ctx, sp.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Kill(ctx, sp.ID, "NOPE"); err == nil {
		t.Error("Kill with an unknown signal succeeded")
	}
	if err := o.Kill(ctx, sp.ID, "SIGUSR1"); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	select {
	case es := <-ch:
		if es.Code != 7 {
			t.Errorf("exit code %d after SIGUSR1, want 7", es.Code)
		}
	case <-ctx.Done():
		t.Fatal("the container did not exit after Kill")
	}
	if err := o.Kill(ctx, sp.ID, "9"); err == nil {
		t.Error("Kill of an exited container succeeded")
	}
}

func (s *suite) testTop(t *testing.T) {
	o := s.operator(t)
	sp := s.spec(t, ImageOCI, "sh", "-c", "echo ready; sleep 61 & wait")
	s.startReady(t, sp)
	procs, err := o.Top(ctxFor(t), sp.ID)
	if err != nil {
		t.Fatalf("Top: %v", err)
	}
	var sh, sleep *runtime.Process
	for i, p := range procs {
		switch {
		case strings.HasPrefix(p.Command, "sh -c"):
			sh = &procs[i]
		case p.Command == "sleep 61":
			sleep = &procs[i]
		}
	}
	if sh == nil || sleep == nil {
		t.Fatalf("Top lacks sh or sleep: %+v", procs)
	}
	if sleep.PPID != sh.PID || sleep.User != "root" || sleep.PID <= 0 {
		t.Errorf("Top's sleep: %+v, want a child of sh (%d) run by root", *sleep, sh.PID)
	}
}

func (s *suite) testCopy(t *testing.T) {
	o := s.operator(t)
	sp := s.startSleeper(t)
	ctx := ctxFor(t)
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	for _, h := range []tar.Header{
		{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o750, Uid: 1000, Gid: 1000, ModTime: mtime},
		{Name: "d/f.txt", Typeflag: tar.TypeReg, Mode: 0o640, Uid: 1000, Gid: 65534, Size: 5, ModTime: mtime},
		{Name: "d/link", Typeflag: tar.TypeSymlink, Linkname: "f.txt", ModTime: mtime},
	} {
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte("hello"))
		}
	}
	tw.Close()
	if err := o.CopyTo(ctx, sp.ID, "/tmp", &in); err != nil {
		t.Fatalf("CopyTo: %v", err)
	}

	var out bytes.Buffer
	if err := o.CopyFrom(ctx, sp.ID, "/tmp/d", &out); err != nil {
		t.Fatalf("CopyFrom: %v", err)
	}
	got := map[string]string{}
	tr := tar.NewReader(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		got[h.Name] = strings.Join([]string{
			string(rune(h.Typeflag)), h.FileInfo().Mode().Perm().String(), strconv.Itoa(h.Uid) + ":" + strconv.Itoa(h.Gid), h.Linkname, string(b),
		}, " ")
		if h.Typeflag == tar.TypeReg && !h.ModTime.Equal(mtime) {
			t.Errorf("%s: mtime %s, want %s", h.Name, h.ModTime, mtime)
		}
	}
	for name, want := range map[string]string{
		"d/":      "5 -rwxr-x--- 1000:1000  ",
		"d/f.txt": "0 -rw-r----- 1000:65534  hello",
		"d/link":  "2 -rwxrwxrwx 0:0 f.txt ",
	} {
		if got[name] != want {
			t.Errorf("CopyFrom entry %s: %q, want %q (all: %q)", name, got[name], want, got)
		}
	}

	// Escapes are refused and write nothing on the host.
	marker := "drover-escape-" + s.prefix
	for name, entries := range map[string][]tar.Header{
		"DotDot":       {{Name: "../../../../tmp/" + marker, Typeflag: tar.TypeReg}},
		"AbsSymlink":   {{Name: "esc", Typeflag: tar.TypeSymlink, Linkname: "/tmp"}, {Name: "esc/" + marker, Typeflag: tar.TypeReg}},
		"UpSymlink":    {{Name: "up", Typeflag: tar.TypeSymlink, Linkname: "../../../../../../tmp"}, {Name: "up/" + marker, Typeflag: tar.TypeReg}},
		"HardlinkOut":  {{Name: "hl", Typeflag: tar.TypeLink, Linkname: "../../etc/passwd"}},
		"AbsoluteName": {{Name: "/../../tmp/" + marker + "/../../x/..", Typeflag: tar.TypeDir}},
	} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, h := range entries {
			tw.WriteHeader(&h)
		}
		tw.Close()
		err := o.CopyTo(ctx, sp.ID, "/tmp", &buf)
		if name != "AbsoluteName" && err == nil {
			t.Errorf("%s: CopyTo of an escaping tar succeeded", name)
		}
		if _, err := os.Lstat(filepath.Join("/tmp", marker)); err == nil {
			os.Remove(filepath.Join("/tmp", marker))
			t.Errorf("%s: CopyTo wrote /tmp/%s on the host", name, marker)
		}
	}

	if err := o.CopyFrom(ctx, sp.ID, "/no/such/path", io.Discard); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("CopyFrom of a missing path: %v, want ErrNotFound", err)
	}
	if err := o.CopyTo(ctx, sp.ID, "/no/such/dir", bytes.NewReader(nil)); err == nil {
		t.Error("CopyTo a missing directory succeeded")
	}
}

func (s *suite) testImageHealthcheck(t *testing.T) {
	ii := s.inspector(t)
	hc, err := ii.ImageHealthcheck(ctxFor(t), ImageHealth)
	if err != nil {
		t.Fatalf("ImageHealthcheck: %v", err)
	}
	want := api.Healthcheck{
		Test:        healthTest.Test,
		Interval:    api.Duration(healthTest.Interval),
		Timeout:     api.Duration(healthTest.Timeout),
		StartPeriod: api.Duration(healthTest.StartPeriod),
		Retries:     healthTest.Retries,
	}
	if hc == nil || strings.Join(hc.Test, "|") != strings.Join(want.Test, "|") || hc.Interval != want.Interval ||
		hc.Timeout != want.Timeout || hc.StartPeriod != want.StartPeriod || hc.Retries != want.Retries || hc.Disable {
		t.Errorf("ImageHealthcheck = %+v, want %+v", hc, want)
	}
	if hc, err := ii.ImageHealthcheck(ctxFor(t), ImageOCI); err != nil || hc != nil {
		t.Errorf("ImageHealthcheck of an image without one: %+v, %v; want nil", hc, err)
	}
}

func (s *suite) testSeedVolume(t *testing.T) {
	ii := s.inspector(t)
	ctx := ctxFor(t)
	dir := t.TempDir()
	if err := ii.SeedVolume(ctx, ImageHealth, "/data/seed", dir); err != nil {
		t.Fatalf("SeedVolume: %v", err)
	}
	fi, err := os.Stat(filepath.Join(dir, "hello.txt"))
	if err != nil {
		t.Fatalf("the seeded volume lacks the image's file: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "hello.txt")); string(b) != "seeded" || fi.Mode().Perm() != 0o640 {
		t.Errorf("seeded file: %q, mode %v; want \"seeded\", 0640", b, fi.Mode().Perm())
	}

	etc := t.TempDir()
	if err := ii.SeedVolume(ctx, ImageOCI, "/etc", etc); err != nil {
		t.Fatalf("SeedVolume(/etc): %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(etc, "passwd")); err != nil || !bytes.Contains(b, []byte("app:x:1000")) {
		t.Errorf("seeded /etc lacks the image's passwd: %q, %v", b, err)
	}

	empty := t.TempDir()
	if err := ii.SeedVolume(ctx, ImageOCI, "/no/such/dir", empty); err != nil {
		t.Errorf("SeedVolume of a path the image lacks: %v", err)
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("SeedVolume of a missing path wrote %v", entries)
	}
}
