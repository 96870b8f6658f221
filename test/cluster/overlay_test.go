package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/test/harness"
)

// overlayCluster is a server on h1 (with its agent) and agents on the other
// hosts, joined with the token, with the test image loaded.
type overlayCluster struct {
	t      *testing.T
	c      *Cluster
	bin    string
	dir    string
	sock   string
	adv    string
	srv    *Proc
	cl     *api.Client
	agents map[string]*Proc
}

func startCluster(t *testing.T, hosts int, serverArgs ...string) *overlayCluster {
	t.Helper()
	requireTools(t)
	bin, archive := harness.Binaries(t)
	c := New(t, hosts)
	dir, err := os.MkdirTemp("", "drvc-ov-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	oc := &overlayCluster{t: t, c: c, bin: bin, dir: dir, sock: filepath.Join(dir, "drover.sock"), adv: c.Hosts()[0].IP + ":7946", agents: map[string]*Proc{}}
	data := filepath.Join(dir, "data")
	t.Cleanup(func() { removeContainers(t, filepath.Join(data, "agent"), dir) })
	for _, h := range c.Hosts()[1:] {
		d := oc.agentDir(h)
		t.Cleanup(func() { removeContainers(t, d, dir) })
	}
	args := append([]string{"server", "--data-dir", data, "--listen", "unix://" + oc.sock, "--address-pool", "10.213.0.0/16",
		"--advertise", oc.adv, "--log-level", "debug"}, serverArgs...)
	oc.srv = c.Hosts()[0].Start(t, bin, args...)
	if oc.cl, err = api.NewClient("unix://" + oc.sock); err != nil {
		t.Fatal(err)
	}
	oc.nodesReady(1)
	token := strings.Fields(oc.must("", "node", "token"))[0]
	for _, h := range c.Hosts()[1:] {
		oc.agents[h.Name] = h.Start(t, bin, "agent", "--server", oc.adv, "--token", token, "--data-dir", oc.agentDir(h), "--log-level", "debug")
	}
	oc.nodesReady(hosts)
	oc.must("", "image", "load", "-i", archive)
	return oc
}

func (oc *overlayCluster) agentDir(h *Host) string { return filepath.Join(oc.dir, "agent-"+h.Name) }

func (oc *overlayCluster) drover(dir string, args ...string) (string, error) {
	cmd := exec.Command(oc.bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DROVER_HOST=unix://"+oc.sock)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (oc *overlayCluster) must(dir string, args ...string) string {
	oc.t.Helper()
	out, err := oc.drover(dir, args...)
	if err != nil {
		oc.t.Fatalf("drover %s: %v\n%s\nserver log:\n%s", strings.Join(args, " "), err, out, tail(oc.srv.Log(), 40))
	}
	return out
}

// up deploys a project and takes it down when the test ends.
func (oc *overlayCluster) up(name, compose string) string {
	oc.t.Helper()
	proj := harness.WriteProject(oc.t, name, compose)
	oc.t.Cleanup(func() { _, _ = oc.drover(proj, "down") })
	oc.must(proj, "up", "-d", "--wait", "--wait-timeout", "120s")
	return proj
}

func (oc *overlayCluster) nodesReady(n int) {
	oc.t.Helper()
	waitFor(oc.t, fmt.Sprintf("%d ready nodes", n), 60*time.Second, func() error {
		nodes, err := oc.cl.Nodes(context.Background())
		if err != nil {
			return err
		}
		ready := 0
		for _, nd := range nodes {
			if nd.State == api.NodeReady {
				ready++
			}
		}
		if ready != n {
			return fmt.Errorf("%d ready of %d", ready, len(nodes))
		}
		return nil
	})
}

// running maps each running task of a service to its node's hostname and
// its address on network.
func (oc *overlayCluster) running(stack, service, network string) map[string]string {
	oc.t.Helper()
	nodes, err := oc.cl.Nodes(context.Background())
	if err != nil {
		oc.t.Fatal(err)
	}
	host := map[string]string{}
	for _, n := range nodes {
		host[n.ID] = n.Hostname
	}
	tasks, err := oc.cl.Tasks(context.Background(), stack)
	if err != nil {
		oc.t.Fatal(err)
	}
	out := map[string]string{}
	for _, tk := range tasks {
		if tk.Service == service && tk.DesiredState == api.DesiredRunning && tk.Status.State == api.StateRunning {
			out[host[tk.NodeID]] = tk.Status.Addresses[stack+"_"+network]
		}
	}
	return out
}

// Containers on different hosts reach each other by address and by
// service name over the network's VXLAN overlay; tasks.NAME lists every
// host's tasks; another network stays out of reach across hosts too; the
// containers' MTU leaves room for VXLAN.
func TestOverlayAcrossHosts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds drover and runs containers")
	}
	oc := startCluster(t, 3)
	proj := oc.up("ov", fmt.Sprintf(`
services:
  web:
    image: %[1]s
    command: ["sh", "-c", "hostname > /www/index.html; dd if=/dev/zero of=/www/big bs=1k count=256 2>/dev/null; exec httpd -f -p 80 -h /www"]
    stop_grace_period: 1s
    deploy:
      replicas: 3
      placement:
        max_replicas_per_node: 1
  client:
    image: %[1]s
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    deploy:
      placement:
        constraints: [node.hostname==h1]
  back1:
    image: %[1]s
    command: ["sh", "-c", "echo back > /www/index.html; exec httpd -f -p 80 -h /www"]
    stop_grace_period: 1s
    networks: [back]
    deploy:
      placement:
        constraints: [node.hostname==h2]
  back2:
    image: %[1]s
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    networks: [back]
    deploy:
      placement:
        constraints: [node.hostname==h3]
networks:
  back: {}
`, harness.Image))

	web := oc.running("ov", "web", "default")
	if len(web) != 3 {
		t.Fatalf("web runs on %v; want one task on each of h1, h2, h3", web)
	}
	// Each host's tasks are in its own slice of the network.
	slices := map[string]bool{}
	for _, ip := range web {
		slices[ip[:strings.LastIndex(ip, ".")]] = true
	}
	if len(slices) != 3 {
		t.Errorf("web's addresses %v: want three different /24 slices", web)
	}

	// By address: the client on h1 reaches web on h2 and h3.
	for _, h := range []string{"h2", "h3"} {
		out, err := oc.drover(proj, "exec", "-T", "client", "timeout", "10", "wget", "-qO-", "http://"+web[h]+"/")
		if err != nil || strings.TrimSpace(out) == "" {
			t.Errorf("client on h1 -> web on %s (%s): %v %q", h, web[h], err, out)
		}
	}
	// By name: the service name answers with the tasks of every host
	// (glibc then prefers the address nearest its own, the local slice),
	// and so does tasks.web.
	if out, err := oc.drover(proj, "exec", "-T", "client", "timeout", "10", "wget", "-qO-", "http://web/"); err != nil || strings.TrimSpace(out) == "" {
		t.Errorf("http://web/ from h1: %v %q", err, out)
	}
	for _, name := range []string{"web", "tasks.web"} {
		out := oc.must(proj, "exec", "-T", "client", "nslookup", name)
		for h, ip := range web {
			if !strings.Contains(out, ip) {
				t.Errorf("%s lacks %s's task %s:\n%s", name, h, ip, out)
			}
		}
	}

	// The second network spans h2 and h3 as well, and the client (default
	// network only) cannot reach it, nor can back2 reach web.
	if out, err := oc.drover(proj, "exec", "-T", "back2", "timeout", "10", "wget", "-qO-", "http://back1/"); err != nil || strings.TrimSpace(out) != "back" {
		t.Errorf("back2 on h3 -> back1 on h2 by name: %v %q", err, out)
	}
	back1 := oc.running("ov", "back1", "back")["h2"]
	if out, err := oc.drover(proj, "exec", "-T", "client", "timeout", "5", "wget", "-qO-", "http://"+back1+"/"); err == nil {
		t.Errorf("client on the default network reached back1 (%s) on another network: %q", back1, out)
	}
	if out, err := oc.drover(proj, "exec", "-T", "back2", "timeout", "5", "wget", "-qO-", "http://"+web["h2"]+"/"); err == nil {
		t.Errorf("back2 on network back reached web on h2 (%s) on the default network: %q", web["h2"], out)
	}

	// The MTU leaves room for VXLAN's 50 bytes on the hosts' link.
	link := strings.Fields(oc.c.Hosts()[0].MustExec(t, "ip", "-o", "link", "show", "dev", "eth0"))
	under := 0
	for i := 0; i+1 < len(link); i++ {
		if link[i] == "mtu" {
			under, _ = strconv.Atoi(link[i+1])
		}
	}
	if under == 0 {
		t.Fatalf("no MTU in %v", link)
	}
	out := oc.must(proj, "exec", "-T", "client", "cat", "/sys/class/net/eth0/mtu")
	if got, _ := strconv.Atoi(strings.TrimSpace(out)); got != under-50 {
		t.Errorf("client's MTU %d; want %d (the hosts' %d less VXLAN's 50)", got, under-50, under)
	}
	// Full-size segments cross.
	if out, err := oc.drover(proj, "exec", "-T", "client", "sh", "-c", "timeout 20 wget -qO- http://"+web["h3"]+"/big | wc -c"); err != nil || strings.TrimSpace(out) != "262144" {
		t.Errorf("256 KiB from web on h3: %v %q", err, out)
	}

	// down removes the overlays with the networks, on every host.
	oc.must(proj, "down")
	waitFor(t, "no VXLAN device left on the hosts", 30*time.Second, func() error {
		var left []string
		for _, h := range oc.c.Hosts() {
			out, _ := h.Exec(t, "ip", "-o", "link", "show", "type", "vxlan")
			if strings.TrimSpace(out) != "" {
				left = append(left, h.Name+": "+strings.TrimSpace(out))
			}
		}
		sort.Strings(left)
		if len(left) > 0 {
			return fmt.Errorf("%s", strings.Join(left, "; "))
		}
		return nil
	})
}
