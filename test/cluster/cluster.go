package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/drover-org/drover/internal/testenv"
)

// Cluster is a test bridge in the root network namespace and the hosts
// attached to it.
type Cluster struct {
	id      string
	bridge  string
	subnetX int // the cluster's subnet is 10.198.<subnetX>.0/24
	hosts   []*Host
	logDir  string

	mu    sync.Mutex
	procs []*Proc
}

// Host is one simulated machine: a network namespace whose eth0 is the
// peer of Link, a veth enslaved to the cluster's bridge.
type Host struct {
	Name  string // h1, h2, ...
	NetNS string // the namespace's name, as `ip netns list` shows it
	IP    string // eth0's address on the test bridge
	Link  string // the host-side veth in the root namespace

	c *Cluster
}

// MaxHosts is the most hosts a cluster can have: veth names must fit in 15
// characters.
const MaxHosts = 99

var counter struct {
	sync.Mutex
	n int
}

// New makes a cluster of n hosts and registers its removal with
// t.Cleanup. Each host's network namespace has lo and eth0 up, eth0
// addressed in the cluster's /24 and a default route via the bridge's
// address; its UTS namespace has the host's name (h1, h2, ...) as hostname.
// ip_forward and the firewall of the root namespace are left alone.
func New(t testing.TB, n int) *Cluster {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "ip")
	if n < 1 || n > MaxHosts {
		t.Fatalf("cluster.New: %d hosts; want 1 to %d", n, MaxHosts)
	}

	counter.Lock()
	counter.n++
	seq := counter.n
	counter.Unlock()

	unlock, err := lockState()
	if err != nil {
		t.Fatalf("cluster: %v", err)
	}
	locked := true
	defer func() {
		if locked {
			unlock()
		}
	}()
	for _, err := range sweep() {
		t.Logf("cluster: sweeping leftovers of crashed runs: %v", err)
	}

	id := newID(os.Getpid(), seq)
	x, err := pickSubnet(seq)
	if err != nil {
		t.Fatalf("cluster: %v", err)
	}
	c := &Cluster{id: id, bridge: prefix + id, subnetX: x}
	c.logDir, err = os.MkdirTemp("", "drvc-logs-")
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		c.hosts = append(c.hosts, &Host{
			Name:  "h" + strconv.Itoa(i),
			NetNS: fmt.Sprintf("%s%s-h%d", prefix, id, i),
			IP:    fmt.Sprintf("10.198.%d.%d", x, 1+i),
			Link:  fmt.Sprintf("%s%s-%d", prefix, id, i),
			c:     c,
		})
	}
	// The marker goes down before anything it describes, so a crash at
	// any point leaves nothing a later sweep cannot attribute.
	if err := writeMarker(c); err != nil {
		t.Fatalf("cluster: %v", err)
	}
	t.Cleanup(func() {
		if errs := c.destroy(); len(errs) > 0 {
			t.Errorf("cluster %s: cleanup: %v", c.bridge, errors.Join(errs...))
		}
		if t.Failed() {
			t.Logf("cluster %s: process logs kept in %s", c.bridge, c.logDir)
		} else {
			os.RemoveAll(c.logDir)
		}
	})
	if err := c.create(); err != nil {
		t.Fatalf("cluster %s: %v", c.bridge, err)
	}
	unlock()
	locked = false
	return c
}

// create makes the bridge, then each host's namespace and veth pair.
func (c *Cluster) create() error {
	steps := [][]string{
		{"link", "add", c.bridge, "type", "bridge"},
		{"link", "set", c.bridge, "alias", aliasFor(os.Getpid())},
		{"addr", "add", c.BridgeIP() + "/24", "dev", c.bridge},
		{"link", "set", c.bridge, "up"},
	}
	for _, h := range c.hosts {
		ns := h.NetNS
		steps = append(steps,
			[]string{"netns", "add", ns},
			// The peer is made in the namespace: the root namespace has its
			// own eth0.
			[]string{"link", "add", h.Link, "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"link", "set", h.Link, "master", c.bridge},
			[]string{"link", "set", h.Link, "up"},
			[]string{"-n", ns, "link", "set", "lo", "up"},
			[]string{"-n", ns, "addr", "add", h.IP + "/24", "dev", "eth0"},
			[]string{"-n", ns, "link", "set", "eth0", "up"},
			[]string{"-n", ns, "route", "add", "default", "via", c.BridgeIP()},
		)
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			return err
		}
	}
	for _, h := range c.hosts {
		if err := createUTS(h.utsPath(), h.Name); err != nil {
			return err
		}
	}
	return nil
}

// destroy kills every process in the hosts, then removes veths, namespaces,
// the bridge and last the marker. It carries on past errors.
func (c *Cluster) destroy() []error {
	var errs []error
	c.mu.Lock()
	procs := c.procs
	c.mu.Unlock()
	for _, p := range procs {
		p.killGroup()
	}
	for _, h := range c.hosts {
		if err := killNetNS(h.NetNS, 10*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range procs {
		if !p.waitDone(10 * time.Second) {
			errs = append(errs, fmt.Errorf("%s: process %d did not exit after SIGKILL", p.name, p.Pid()))
		}
	}
	errs = append(errs, removeResources(c.id, c.bridge)...)
	if len(errs) == 0 {
		if err := os.Remove(markerPath(c.id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errs
}

// Hosts are the cluster's hosts, h1 first.
func (c *Cluster) Hosts() []*Host { return c.hosts }

// Host is the host called name (h1, h2, ...); it panics if there is none.
func (c *Cluster) Host(name string) *Host {
	for _, h := range c.hosts {
		if h.Name == name {
			return h
		}
	}
	panic("cluster: no host " + name)
}

// BridgeIP is the bridge's address: the root namespace's address on the
// test network and every host's default gateway. A server run in the root
// namespace listens here for agents in the hosts.
func (c *Cluster) BridgeIP() string { return fmt.Sprintf("10.198.%d.1", c.subnetX) }

// Subnet is the test network, such as 10.198.140.0/24.
func (c *Cluster) Subnet() string { return fmt.Sprintf("10.198.%d.0/24", c.subnetX) }

// Bridge is the name of the test bridge in the root namespace.
func (c *Cluster) Bridge() string { return c.bridge }

// NSPath is the path of the host's namespace, for netns.GetFromPath.
func (h *Host) NSPath() string { return filepath.Join(netnsDir, h.NetNS) }

// CutLink takes the host-side veth down: the host keeps its address and
// processes but can reach nothing and nothing can reach it.
func (h *Host) CutLink(t testing.TB) {
	t.Helper()
	if err := ip("link", "set", h.Link, "down"); err != nil {
		t.Fatalf("cut %s: %v", h.Name, err)
	}
}

// RestoreLink brings the host-side veth back up.
func (h *Host) RestoreLink(t testing.TB) {
	t.Helper()
	if err := ip("link", "set", h.Link, "up"); err != nil {
		t.Fatalf("restore %s: %v", h.Name, err)
	}
}

// KillAll sends SIGKILL to every process in the host's network namespace,
// as a power cut would end them, and waits until they are gone. Containers
// have network namespaces of their own and survive it; their shims, which
// are containerd's children, do not.
func (h *Host) KillAll(t testing.TB) {
	t.Helper()
	if err := killNetNS(h.NetNS, 10*time.Second); err != nil {
		t.Fatalf("%s: %v", h.Name, err)
	}
}
