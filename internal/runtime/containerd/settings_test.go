package containerd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/imagebuild"
	"github.com/drover-org/drover/internal/runtime"
)

func TestCapabilities(t *testing.T) {
	for _, tc := range []struct {
		name      string
		add, drop []string
		want      string
	}{
		{"None", nil, nil, strings.Join(defaultCaps, ",")},
		{"DropAll", nil, []string{"ALL"}, ""},
		{"DropAllAdd", []string{"net_admin"}, []string{"all"}, "CAP_NET_ADMIN"},
		{"AddDrop", []string{"SYS_TIME"}, []string{"CAP_CHOWN", "dac_override", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"},
			"CAP_AUDIT_WRITE,CAP_SYS_TIME"},
		{"Unknown", []string{"CAP_NOPE"}, nil, "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			caps, err := capabilities(defaultCaps, tc.add, tc.drop)
			got := strings.Join(caps, ",")
			if err != nil {
				got = "error"
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseSecurityOpts(t *testing.T) {
	o, err := parseSecurityOpts([]string{"no-new-privileges", "seccomp:unconfined", "apparmor=foo", "label=disable", "systempaths=unconfined"})
	if err != nil || !o.noNewPrivileges || !o.seccompUnconfined || o.apparmor != "foo" || !o.systemPathsOpen {
		t.Errorf("parseSecurityOpts: %+v, %v", o, err)
	}
	o, err = parseSecurityOpts([]string{`seccomp={"defaultAction":"SCMP_ACT_ALLOW"}`, "no-new-privileges=false"})
	if err != nil || o.seccompProfile == nil || o.seccompProfile.DefaultAction != "SCMP_ACT_ALLOW" || o.noNewPrivileges {
		t.Errorf("parseSecurityOpts with a profile: %+v, %v", o, err)
	}
	for _, bad := range []string{"nope", "no-new-privileges=maybe", "seccomp=/no/such/profile.json", "seccomp={", "apparmor=", "systempaths=x"} {
		if _, err := parseSecurityOpts([]string{bad}); err == nil {
			t.Errorf("parseSecurityOpts(%q) succeeded", bad)
		}
	}
}

func TestRlimits(t *testing.T) {
	rls, err := rlimits([]api.Ulimit{{Name: "nofile", Soft: 100, Hard: 200}, {Name: "nproc", Soft: 50}, {Name: "memlock", Soft: -1, Hard: -1}})
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(rls)
	if want := fmt.Sprintf("[{RLIMIT_NOFILE 200 100} {RLIMIT_NPROC 50 50} {RLIMIT_MEMLOCK %d %d}]", ^uint64(0), ^uint64(0)); got != want {
		t.Errorf("rlimits: %s, want %s", got, want)
	}
	for _, bad := range []api.Ulimit{{Name: "nope", Soft: 1}, {Name: "nofile", Soft: 10, Hard: 5}} {
		if _, err := rlimits([]api.Ulimit{bad}); err == nil {
			t.Errorf("rlimits(%+v) succeeded", bad)
		}
	}
}

func TestResolveIn(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"etc", "run", "var"} {
		os.Mkdir(filepath.Join(root, d), 0o755)
	}
	os.Symlink("/run", filepath.Join(root, "var", "run"))
	os.Symlink("../../../../etc", filepath.Join(root, "up"))
	os.Symlink("loop", filepath.Join(root, "loop"))
	for _, tc := range []struct {
		p          string
		followLast bool
		want       string
	}{
		{"/", false, "."},
		{"/etc/passwd", false, "etc/passwd"},
		{"/var/run/x", false, "run/x"},
		{"/var/run", false, "var/run"},
		{"/var/run", true, "run"},
		{"/../../etc", false, "etc"},
		{"/up/x", false, "etc/x"},
		{"/missing/../etc", false, "etc"},
		{"/loop/x", false, "error"},
	} {
		got, err := resolveIn(root, tc.p, tc.followLast)
		if err != nil {
			got = "error"
		}
		if got != tc.want {
			t.Errorf("resolveIn(%q, %v) = %q, want %q", tc.p, tc.followLast, got, tc.want)
		}
	}
}

func TestLocalName(t *testing.T) {
	for name, want := range map[string]string{
		"a/b": "a/b", "./a": "a", "a/../b": "b", ".": ".", "a/": "a",
		"../a": "error", "/a": "error", "a/../../b": "error", "": ".",
	} {
		got, err := localName(name)
		if err != nil {
			got = "error"
		}
		if got != want {
			t.Errorf("localName(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestHealthcheckFromImage(t *testing.T) {
	if healthcheckFromImage(nil) != nil || healthcheckFromImage(&dockerHealthConfig{}) != nil {
		t.Error("no healthcheck gave one")
	}
	hc := healthcheckFromImage(&dockerHealthConfig{Test: []string{"NONE"}})
	if hc == nil || !hc.Disable {
		t.Errorf("HEALTHCHECK NONE: %+v, want disabled", hc)
	}
	hc = healthcheckFromImage(&dockerHealthConfig{Test: []string{"CMD", "true"}, Interval: 5e9, StartInterval: 1e9, Retries: 2})
	if hc == nil || hc.Interval.D() != 5*time.Second || hc.StartInterval.D() != time.Second || hc.Retries != 2 || hc.Disable {
		t.Errorf("healthcheck: %+v", hc)
	}
}

// TestTtyAndStdinOpen checks tty (through a logger binary, which the shim
// needs for a terminal) and stdin_open (raw logs: a stdin nobody writes).
func TestTtyAndStdinOpen(t *testing.T) {
	dir := t.TempDir()
	logger := filepath.Join(dir, "logger.sh")
	script := `#!/bin/sh
exec 5>&-
while read -r l; do echo "out: $l" >> "$2"; done <&3 &
while read -r l; do echo "err: $l" >> "$2"; done <&4 &
wait
`
	if err := os.WriteFile(logger, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	withLogger := openShared(t, Config{LoggerBinary: logger})
	raw := openShared(t, Config{})
	importBusybox(t, raw)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	start := func(d *Driver, name string, st api.ContainerSettings, cmd string) runtime.ContainerSpec {
		sp := runtime.ContainerSpec{
			ID: fmt.Sprintf("%s-%d", name, os.Getpid()), Image: imagebuild.DefaultRef,
			LogPath: filepath.Join(dir, name, "log"), Command: []string{"sh", "-c", cmd}, Settings: st,
		}
		t.Cleanup(func() { d.Destroy(context.Background(), sp.ID) })
		if _, err := d.Start(ctx, sp); err != nil {
			t.Fatalf("Start %s: %v", name, err)
		}
		return sp
	}
	logHas := func(sp runtime.ContainerSpec, want string) {
		t.Helper()
		waitFor(t, func() bool {
			b, _ := os.ReadFile(sp.LogPath)
			return strings.Contains(string(b), want)
		}, fmt.Sprintf("%q in %s", want, sp.LogPath))
	}

	tty := start(withLogger, "tty", api.ContainerSettings{Tty: true}, "test -t 0 && test -t 1 && echo is-a-tty $TERM; echo ready")
	logHas(tty, "out: is-a-tty xterm")

	open := start(raw, "stdin-open", api.ContainerSettings{StdinOpen: true}, "echo ready; read x; echo read-returned")
	closed := start(raw, "stdin-closed", api.ContainerSettings{}, "echo ready; read x; echo read-returned")
	logHas(closed, "read-returned")
	logHas(open, "ready")
	time.Sleep(300 * time.Millisecond)
	if b, _ := os.ReadFile(open.LogPath); strings.Contains(string(b), "read-returned") {
		t.Error("with stdin_open, read returned: stdin was closed")
	}

	sp := runtime.ContainerSpec{ID: fmt.Sprintf("tty-raw-%d", os.Getpid()), Image: imagebuild.DefaultRef,
		LogPath: filepath.Join(dir, "raw", "log"), Command: []string{"true"}, Settings: api.ContainerSettings{Tty: true}}
	if _, err := raw.Start(ctx, sp); err == nil || !strings.Contains(err.Error(), "logger binary") {
		t.Errorf("tty with raw logs: %v, want an error asking for the logger binary", err)
	}
}
