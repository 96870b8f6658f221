package cluster

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/buildkitd"
	"github.com/drover-org/drover/internal/mesh"
	"github.com/drover-org/drover/internal/runtime/containerd"
	"github.com/drover-org/drover/test/harness"
)

// A whole `drover server` (with its agent, containerd, CNI bridges and
// iptables rules) runs inside one host; a published port is reached from
// another host on the first host's address.
func TestDroverServerInHost(t *testing.T) {
	if testing.Short() {
		t.Skip("builds drover and runs containers")
	}
	requireTools(t)
	bin, archive := harness.Binaries(t)
	c := New(t, 2)
	h1, h2 := c.Hosts()[0], c.Hosts()[1]
	dir, err := os.MkdirTemp("", "drvc-srv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "drover.sock")
	data := filepath.Join(dir, "data")
	// Containers have network namespaces of their own: removing the
	// cluster does not end them. Runs after every server is killed and
	// before the cluster goes, while containerd still runs in h1.
	t.Cleanup(func() { removeContainers(t, filepath.Join(data, "agent"), dir) })
	var proj string
	start := func() *Proc {
		p := h1.Start(t, bin, "server", "--data-dir", data, "--listen", "unix://"+sock, "--address-pool", "10.213.0.0/16", "--log-level", "debug")
		// Runs before this server is killed (cleanups run last first).
		t.Cleanup(func() {
			select {
			case <-p.Done():
				return
			default:
			}
			if proj == "" {
				return
			}
			cmd := exec.Command(bin, "down")
			cmd.Dir = proj
			cmd.Env = append(os.Environ(), "DROVER_HOST=unix://"+sock)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("down: %v\n%s", err, out)
			}
		})
		return p
	}
	srv := start()
	cl, err := api.NewClient("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	ready := func() {
		t.Helper()
		waitFor(t, "the node in h1 to be ready", 60*time.Second, func() error {
			nodes, err := cl.Nodes(context.Background())
			if err != nil {
				return err
			}
			if len(nodes) != 1 || nodes[0].State != api.NodeReady {
				return fmt.Errorf("nodes %+v", nodes)
			}
			if nodes[0].Hostname != "h1" {
				t.Errorf("node hostname %q, want h1", nodes[0].Hostname)
			}
			return nil
		})
	}
	ready()
	drover := func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "DROVER_HOST=unix://"+sock)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("drover %s: %v\n%s\nserver log:\n%s", strings.Join(args, " "), err, out, srv.Log())
		}
		return string(out)
	}
	drover("", "image", "load", "-i", archive)
	proj = harness.WriteProject(t, "inhost", fmt.Sprintf(`
services:
  web:
    image: %s
    command: ["sh", "-c", "echo hi from a container in h1 > /www/index.html; exec httpd -f -p 80 -h /www"]
    ports: ["18080:80"]
`, harness.Image))
	drover(proj, "up", "-d")
	url := "http://" + h1.IP + ":18080/"
	waitFor(t, "h2 to reach the container published on h1", 30*time.Second, func() error {
		out, err := h2.Exec(t, "timeout", "3", "busybox", "wget", "-q", "-O", "-", url)
		if err != nil || !strings.Contains(out, "hi from a container in h1") {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	resp, err := (&http.Client{Timeout: 3 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("root namespace: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	t.Logf("root namespace got %q", b)
	// The port is not published in the root namespace.
	if _, err := (&http.Client{Timeout: time.Second}).Get("http://127.0.0.1:18080/"); err == nil {
		t.Errorf("the port is published on the root namespace's loopback")
	}

	// Killed with -9 and restarted, the server adopts its container: the
	// bind mounts of the containers' network namespaces, made by the
	// first incarnation, are seen by the second.
	tasks, err := cl.Tasks(context.Background(), "inhost")
	if err != nil || len(tasks) != 1 {
		t.Fatalf("tasks %+v, %v", tasks, err)
	}
	before := tasks[0]
	srv.Kill9()
	if out, err := h2.Exec(t, "timeout", "3", "busybox", "wget", "-q", "-O", "-", url); err != nil {
		t.Errorf("the container stopped answering with the server killed: %v: %s", err, out)
	}
	srv = start()
	ready()
	time.Sleep(3 * time.Second) // let the agent act on what it found
	tasks, err = cl.Tasks(context.Background(), "inhost")
	if err != nil || len(tasks) != 1 || tasks[0].ID != before.ID || tasks[0].Status.PID != before.Status.PID {
		t.Errorf("after kill -9 and restart: tasks %+v, %v; want task %s with pid %d", tasks, err, before.ID, before.Status.PID)
	}
	if out, err := h2.Exec(t, "timeout", "3", "busybox", "wget", "-q", "-O", "-", url); err != nil {
		t.Errorf("after the restart: %v: %s", err, out)
	}
	if strings.Contains(srv.Log(), "stand-in") || strings.Contains(srv.Log(), "standIn") {
		t.Logf("server log mentions stand-in namespaces:\n%s", srv.Log())
	}
	t.Logf("h1 bridges: %s", h1.MustExec(t, "ip", "-o", "link", "show", "type", "bridge"))
	t.Logf("h1 nat rules: %s", h1.MustExec(t, "sh", "-c", "iptables -t nat -S | grep -c . "))
}

// removeContainers destroys what containers a failed test left in an
// agent's containerd and unmounts what is left under dir (the containers'
// network namespaces and root filesystems).
func removeContainers(t *testing.T, agentDir, dir string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if drv, err := containerd.Open(ctx, containerd.Config{DataDir: agentDir}); err == nil {
		if sts, err := drv.Recover(ctx); err == nil {
			for _, st := range sts {
				t.Logf("destroying left container %s", st.ID)
				_ = drv.Destroy(ctx, st.ID)
			}
		}
		drv.Close()
	}
	_ = buildkitd.StopOwn(agentDir)
	_ = containerd.StopOwnContainerd(agentDir)
	_ = mesh.StopOwn(filepath.Join(agentDir, "mesh"))
	b, _ := os.ReadFile("/proc/self/mounts")
	lines := strings.Split(string(b), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if f := strings.Fields(lines[i]); len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			t.Logf("unmounting %s", f[1])
			_ = syscall.Unmount(f[1], syscall.MNT_DETACH)
		}
	}
}
