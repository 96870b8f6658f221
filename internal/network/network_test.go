package network_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/network"
	"github.com/drover-org/drover/internal/testenv"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Each test network gets its own subnet 10.251.<n>.0/24 and bridge drv-t<pid><n>,
// so tests never collide with each other or with a run left half-done.
var netSeq atomic.Int32

func newManager(t *testing.T) (*network.Manager, network.Config) {
	t.Helper()
	testenv.RequireRoot(t)
	dir := testenv.RequireCNI(t)
	state := t.TempDir()
	cfg := network.Config{PluginDirs: []string{dir}, StateDir: state, Logger: testLogger(t)}
	m, err := network.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	// Last line of defence: a namespace mount left behind would keep
	// TempDir from being removed and leak the namespace.
	t.Cleanup(func() {
		entries, _ := os.ReadDir(filepath.Join(state, "netns"))
		for _, e := range entries {
			p := filepath.Join(state, "netns", e.Name())
			t.Errorf("namespace %s left behind", p)
			_ = unix.Unmount(p, unix.MNT_DETACH)
		}
	})
	return m, cfg
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// newNetwork makes a unique test network and removes its bridge and state
// when the test ends, whatever happened.
func newNetwork(t *testing.T, m *network.Manager) network.Network {
	t.Helper()
	k := netSeq.Add(1)
	if k > 250 {
		t.Fatal("out of test subnets")
	}
	n := network.Network{
		Name:    fmt.Sprintf("t%d_net", k),
		Bridge:  fmt.Sprintf("drv-t%d-%d", os.Getpid()%10000, k),
		Subnet:  fmt.Sprintf("10.251.%d.0/24", k),
		Gateway: fmt.Sprintf("10.251.%d.1", k),
	}
	t.Cleanup(func() {
		if err := m.RemoveNetwork(context.Background(), n); err != nil {
			t.Errorf("cleanup RemoveNetwork: %v", err)
		}
		if l, err := netlink.LinkByName(n.Bridge); err == nil {
			_ = netlink.LinkDel(l)
		}
	})
	return n
}

// attach attaches and makes sure the task is detached when the test ends.
func attach(t *testing.T, m *network.Manager, req network.Request) network.Result {
	t.Helper()
	res, err := m.Attach(ctx(t), req)
	if err != nil {
		t.Fatalf("Attach %s: %v", req.ID, err)
	}
	t.Cleanup(func() {
		if err := m.Detach(context.Background(), req); err != nil {
			t.Errorf("cleanup Detach %s: %v", req.ID, err)
		}
	})
	return res
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func taskID(t *testing.T, suffix string) string {
	name := strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())
	return fmt.Sprintf("%s-%d-%s", strings.ToLower(name), os.Getpid(), suffix)
}

// inNetNS runs fn with the calling goroutine's thread in the namespace at
// path. Sockets made by fn stay in that namespace afterwards.
func inNetNS(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(path)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, err) // thread stays locked and is discarded
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// serve listens on TCP port inside the namespace and answers every
// connection with greeting.
func serve(t *testing.T, nsPath string, port int, greeting string) {
	t.Helper()
	var l net.Listener
	err := inNetNS(nsPath, func() error {
		var err error
		l, err = net.Listen("tcp4", fmt.Sprintf(":%d", port))
		return err
	})
	if err != nil {
		t.Fatalf("listen in %s: %v", nsPath, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, greeting)
			c.Close()
		}
	}()
}

func readGreeting(c net.Conn) (string, error) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", err
	}
	return strings.TrimSpace(line), nil
}

func dialHost(addr string) (string, error) {
	c, err := net.DialTimeout("tcp4", addr, 3*time.Second)
	if err != nil {
		return "", err
	}
	return readGreeting(c)
}

func dialFrom(nsPath, addr string) (string, error) {
	var c net.Conn
	err := inNetNS(nsPath, func() error {
		var err error
		c, err = net.DialTimeout("tcp4", addr, 3*time.Second)
		return err
	})
	if err != nil {
		return "", err
	}
	return readGreeting(c)
}

// freePort finds a TCP port nothing on the host uses now.
func freePort(t *testing.T) uint16 {
	t.Helper()
	l, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

// hostAddr is the IPv4 address of the host's default-route interface.
func hostAddr(t *testing.T) net.IP {
	t.Helper()
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		link, err := netlink.LinkByIndex(r.LinkIndex)
		if err != nil {
			continue
		}
		addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
		if err == nil && len(addrs) > 0 {
			return addrs[0].IP
		}
	}
	testenv.Missing(t, "host has no default route with an IPv4 address")
	return nil
}

// iptablesMentions returns the iptables and nft rule lines that name s.
func iptablesMentions(t *testing.T, s string) []string {
	t.Helper()
	out, err := exec.Command("iptables-save").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables-save: %v\n%s", err, out)
	}
	var hits []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, s) {
			hits = append(hits, line)
		}
	}
	return hits
}

// nsLinks returns the links in a namespace, by name.
func nsLinks(t *testing.T, nsPath string) map[string]netlink.Link {
	t.Helper()
	h, err := netns.GetFromPath(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	links, err := nl.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]netlink.Link{}
	for _, l := range links {
		out[l.Attrs().Name] = l
	}
	return out
}

func nsAddrs(t *testing.T, nsPath, ifname string) []net.IP {
	t.Helper()
	h, err := netns.GetFromPath(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	l, err := nl.LinkByName(ifname)
	if err != nil {
		t.Fatalf("%s in %s: %v", ifname, nsPath, err)
	}
	addrs, err := nl.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var ips []net.IP
	for _, a := range addrs {
		ips = append(ips, a.IP)
	}
	return ips
}

func nsDefaultRouteDev(t *testing.T, nsPath string) []string {
	t.Helper()
	h, err := netns.GetFromPath(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	routes, err := nl.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var devs []string
	for _, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		l, err := nl.LinkByIndex(r.LinkIndex)
		if err == nil {
			devs = append(devs, l.Attrs().Name)
		}
	}
	return devs
}

func containsIP(ips []net.IP, ip net.IP) bool {
	for _, x := range ips {
		if x.Equal(ip) {
			return true
		}
	}
	return false
}

func mustNotExist(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still exists (err %v)", path, err)
	}
}

func TestNewReportsMissingPlugins(t *testing.T) {
	_, err := network.New(network.Config{PluginDirs: []string{t.TempDir()}, StateDir: t.TempDir()})
	if err == nil {
		t.Fatal("New with an empty plugin dir succeeded")
	}
	for _, want := range []string{"bridge", "portmap", "apt-get install containernetworking-plugins"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestAttachGivesAddressAndNamespace(t *testing.T) {
	m, _ := newManager(t)
	n := newNetwork(t, m)
	req := network.Request{ID: taskID(t, "a"), Networks: []network.Network{n}}
	res := attach(t, m, req)

	if res.NetNSPath != m.NetNSPath(req.ID) {
		t.Errorf("NetNSPath = %s, want %s", res.NetNSPath, m.NetNSPath(req.ID))
	}
	ip := res.IPs[n.Name]
	_, subnet, _ := net.ParseCIDR(n.Subnet)
	if ip == nil || !subnet.Contains(ip) || ip.Equal(net.ParseIP(n.Gateway)) {
		t.Fatalf("IP %v not a task address in %s", ip, n.Subnet)
	}
	links := nsLinks(t, res.NetNSPath)
	lo, ok := links["lo"]
	if !ok || lo.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("lo missing or down in the namespace: %v", links)
	}
	eth0, ok := links["eth0"]
	if !ok {
		t.Fatalf("no eth0 in the namespace: %v", links)
	}
	if got, want := eth0.Attrs().MTU, hostMTU(t); got != want {
		t.Errorf("eth0 MTU = %d, want the host's %d", got, want)
	}
	if addrs := nsAddrs(t, res.NetNSPath, "eth0"); !containsIP(addrs, ip) {
		t.Errorf("eth0 addresses %v lack %v", addrs, ip)
	}
	if devs := nsDefaultRouteDev(t, res.NetNSPath); len(devs) != 1 || devs[0] != "eth0" {
		t.Errorf("default routes via %v, want [eth0]", devs)
	}
	// The gateway is on the bridge and answers from the namespace.
	br, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		t.Fatalf("bridge %s: %v", n.Bridge, err)
	}
	braddrs, _ := netlink.AddrList(br, netlink.FAMILY_V4)
	if len(braddrs) == 0 || !braddrs[0].IP.Equal(net.ParseIP(n.Gateway)) {
		t.Errorf("bridge addresses %v, want %s", braddrs, n.Gateway)
	}
	if _, err := m.Attach(ctx(t), req); !errors.Is(err, api.ErrConflict) {
		t.Errorf("second Attach of the same task: err %v, want ErrConflict", err)
	}
}

func hostMTU(t *testing.T) int {
	routes, _ := netlink.RouteList(nil, netlink.FAMILY_V4)
	for _, r := range routes {
		if r.Dst == nil || func() bool { o, _ := r.Dst.Mask.Size(); return o == 0 }() {
			if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil {
				return l.Attrs().MTU
			}
		}
	}
	return 1500
}

func TestTasksOnOneNetworkReachEachOther(t *testing.T) {
	m, _ := newManager(t)
	n := newNetwork(t, m)
	a := attach(t, m, network.Request{ID: taskID(t, "a"), Networks: []network.Network{n}})
	b := attach(t, m, network.Request{ID: taskID(t, "b"), Networks: []network.Network{n}})
	if a.IPs[n.Name].Equal(b.IPs[n.Name]) {
		t.Fatalf("both tasks got %v", a.IPs[n.Name])
	}
	serve(t, a.NetNSPath, 7000, "hello from a")
	got, err := dialFrom(b.NetNSPath, net.JoinHostPort(a.IPs[n.Name].String(), "7000"))
	if err != nil || got != "hello from a" {
		t.Fatalf("b -> a: %q, %v", got, err)
	}
}

func TestPublishedPort(t *testing.T) {
	m, _ := newManager(t)
	n := newNetwork(t, m)
	hostPort := freePort(t)
	req := network.Request{
		ID:       taskID(t, "web"),
		Networks: []network.Network{n},
		Ports:    []network.PortMapping{{HostPort: hostPort, ContainerPort: 8080, Protocol: "tcp"}},
	}
	res, err := m.Attach(ctx(t), req)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	detached := false
	t.Cleanup(func() {
		if !detached {
			_ = m.Detach(context.Background(), req)
		}
	})
	serve(t, res.NetNSPath, 8080, "hello from web")

	port := fmt.Sprint(hostPort)
	for _, host := range []string{"127.0.0.1", hostAddr(t).String()} {
		got, err := dialHost(net.JoinHostPort(host, port))
		if err != nil || got != "hello from web" {
			t.Errorf("dial %s:%s: %q, %v", host, port, got, err)
		}
	}
	if len(iptablesMentions(t, req.ID)) == 0 {
		t.Errorf("no iptables rule mentions %s while attached; the check below proves nothing", req.ID)
	}

	// Another task cannot take the same host port.
	other := network.Request{ID: taskID(t, "other"), Networks: []network.Network{n}, Ports: req.Ports}
	if _, err := m.Attach(ctx(t), other); !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), port) {
		t.Errorf("Attach of a second task on host port %s: err %v, want ErrConflict naming the port", port, err)
	}
	mustNotExist(t, m.NetNSPath(other.ID))

	if err := m.Detach(ctx(t), req); err != nil {
		t.Fatalf("Detach: %v", err)
	}
	detached = true
	for _, host := range []string{"127.0.0.1", hostAddr(t).String()} {
		if got, err := dialHost(net.JoinHostPort(host, port)); err == nil {
			t.Errorf("%s:%s still answers %q after Detach", host, port, got)
		}
	}
	if hits := iptablesMentions(t, req.ID); len(hits) > 0 {
		t.Errorf("iptables rules left after Detach:\n%s", strings.Join(hits, "\n"))
	}
	mustNotExist(t, res.NetNSPath)
	if err := m.Detach(ctx(t), req); err != nil {
		t.Errorf("second Detach: %v", err)
	}
}

func TestPortHeldByHostProcess(t *testing.T) {
	m, _ := newManager(t)
	n := newNetwork(t, m)
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	hostPort := uint16(l.Addr().(*net.TCPAddr).Port)
	req := network.Request{
		ID:       taskID(t, "a"),
		Networks: []network.Network{n},
		Ports:    []network.PortMapping{{HostPort: hostPort, ContainerPort: 80}},
	}
	_, err = m.Attach(ctx(t), req)
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), fmt.Sprint(hostPort)) {
		t.Fatalf("Attach on a port a host process holds: err %v, want ErrConflict naming the port", err)
	}
	t.Logf("error as the user sees it: %v", err)
	mustNotExist(t, m.NetNSPath(req.ID))
}

func TestDetachAfterRestartUsesCache(t *testing.T) {
	m, cfg := newManager(t)
	n := newNetwork(t, m)
	hostPort := freePort(t)
	req := network.Request{
		ID:       taskID(t, "a"),
		Networks: []network.Network{n},
		Ports:    []network.PortMapping{{HostIP: "127.0.0.1", HostPort: hostPort, ContainerPort: 9090, Protocol: "tcp"}},
	}
	res, err := m.Attach(ctx(t), req)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	t.Cleanup(func() { _ = m.Detach(context.Background(), req) })
	serve(t, res.NetNSPath, 9090, "still here")
	addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(hostPort))
	if got, err := dialHost(addr); err != nil || got != "still here" {
		t.Fatalf("dial %s: %q, %v", addr, got, err)
	}

	// A new process knows only the task id and its networks: the port
	// mappings for the DEL must come from libcni's cache.
	m2, err := network.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.Detach(ctx(t), network.Request{ID: req.ID, Networks: req.Networks}); err != nil {
		t.Fatalf("Detach from a new Manager: %v", err)
	}
	if hits := iptablesMentions(t, req.ID); len(hits) > 0 {
		t.Errorf("iptables rules left after Detach:\n%s", strings.Join(hits, "\n"))
	}
	if got, err := dialHost(addr); err == nil {
		t.Errorf("%s still answers %q", addr, got)
	}
	mustNotExist(t, res.NetNSPath)
	// The address went back to the pool: host-local keeps one file per lease.
	if _, err := os.Stat(filepath.Join(cfg.StateDir, "ipam", "drover-"+n.Name, res.IPs[n.Name].String())); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lease of %v still held (err %v)", res.IPs[n.Name], err)
	}
}

func TestTwoNetworksAreSeparate(t *testing.T) {
	m, _ := newManager(t)
	front, back := newNetwork(t, m), newNetwork(t, m)
	req := network.Request{ID: taskID(t, "a"), Networks: []network.Network{front, back}}
	res := attach(t, m, req)

	for i, n := range req.Networks {
		ifname := fmt.Sprintf("eth%d", i)
		ip := res.IPs[n.Name]
		_, subnet, _ := net.ParseCIDR(n.Subnet)
		if ip == nil || !subnet.Contains(ip) {
			t.Errorf("%s: IP %v not in %s", n.Name, ip, n.Subnet)
		}
		if addrs := nsAddrs(t, res.NetNSPath, ifname); !containsIP(addrs, ip) {
			t.Errorf("%s addresses %v lack %v", ifname, addrs, ip)
		}
		br, err := netlink.LinkByName(n.Bridge)
		if err != nil {
			t.Fatalf("bridge %s: %v", n.Bridge, err)
		}
		// The host side of the task's interface is on this bridge only.
		var ports int
		links, _ := netlink.LinkList()
		for _, l := range links {
			if l.Attrs().MasterIndex == br.Attrs().Index {
				ports++
			}
		}
		if ports != 1 {
			t.Errorf("bridge %s has %d ports, want 1", n.Bridge, ports)
		}
	}
	if devs := nsDefaultRouteDev(t, res.NetNSPath); len(devs) != 1 || devs[0] != "eth0" {
		t.Errorf("default routes via %v, want only eth0", devs)
	}

	nets, err := m.Networks()
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, got := range nets {
		for _, n := range req.Networks {
			if got.Name == n.Name && got.Bridge == n.Bridge && got.Subnet == n.Subnet && got.Gateway == n.Gateway {
				found++
			}
		}
	}
	if found != 2 {
		t.Errorf("Networks() = %+v, want both %s and %s", nets, front.Name, back.Name)
	}
}

func TestRemoveNetwork(t *testing.T) {
	m, cfg := newManager(t)
	n := newNetwork(t, m)
	req := network.Request{ID: taskID(t, "a"), Networks: []network.Network{n}}
	if _, err := m.Attach(ctx(t), req); err != nil {
		t.Fatal(err)
	}
	if err := m.Detach(ctx(t), req); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName(n.Bridge); err != nil {
		t.Fatalf("bridge %s gone before RemoveNetwork: %v", n.Bridge, err)
	}
	for i := 0; i < 2; i++ {
		if err := m.RemoveNetwork(ctx(t), n); err != nil {
			t.Fatalf("RemoveNetwork #%d: %v", i+1, err)
		}
	}
	var nf netlink.LinkNotFoundError
	if _, err := netlink.LinkByName(n.Bridge); !errors.As(err, &nf) {
		t.Errorf("bridge %s still there after RemoveNetwork (err %v)", n.Bridge, err)
	}
	mustNotExist(t, filepath.Join(cfg.StateDir, "ipam", "drover-"+n.Name))
	mustNotExist(t, filepath.Join(cfg.StateDir, "cni", n.Name+".conflist"))
	nets, err := m.Networks()
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range nets {
		if got.Name == n.Name || got.Bridge == n.Bridge {
			t.Errorf("Networks() still lists %+v", got)
		}
	}
}

func TestNetworksFindsStaleBridges(t *testing.T) {
	m, _ := newManager(t)
	name := fmt.Sprintf("drv-t%d-stale", os.Getpid()%10000)
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
	if err := netlink.LinkAdd(br); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netlink.LinkDel(br) })
	nets, err := m.Networks()
	if err != nil {
		t.Fatal(err)
	}
	var stale *network.Network
	for i := range nets {
		if nets[i].Bridge == name {
			stale = &nets[i]
		}
	}
	if stale == nil || stale.Name != "" {
		t.Fatalf("Networks() = %+v, want the stale bridge %s without a name", nets, name)
	}
	if err := m.RemoveNetwork(ctx(t), *stale); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName(name); err == nil {
		t.Errorf("stale bridge %s not removed", name)
	}
}

func TestAttachFailureLeavesNothing(t *testing.T) {
	m, cfg := newManager(t)

	t.Run("bad subnet", func(t *testing.T) {
		n := newNetwork(t, m)
		n.Subnet = "10.251.300.0/24"
		req := network.Request{ID: taskID(t, "a"), Networks: []network.Network{n}}
		_, err := m.Attach(ctx(t), req)
		if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), n.Name) {
			t.Fatalf("err %v, want ErrInvalid naming %s", err, n.Name)
		}
		mustNotExist(t, m.NetNSPath(req.ID))
	})

	t.Run("second network out of addresses", func(t *testing.T) {
		good := newNetwork(t, m)
		// A /30 has one address for tasks once the gateway has its own.
		full := newNetwork(t, m)
		full.Subnet = strings.Replace(full.Subnet, "/24", "/30", 1)
		attach(t, m, network.Request{ID: taskID(t, "first"), Networks: []network.Network{full}})

		req := network.Request{
			ID:       taskID(t, "second"),
			Networks: []network.Network{good, full},
			Ports:    []network.PortMapping{{HostPort: freePort(t), ContainerPort: 80}},
		}
		_, err := m.Attach(ctx(t), req)
		if err == nil {
			t.Fatal("Attach to a full network succeeded")
		}
		if !strings.Contains(err.Error(), full.Name) || strings.Contains(err.Error(), "undoing it failed") {
			t.Errorf("error %q should name network %s and undo cleanly", err, full.Name)
		}
		t.Logf("error as the user sees it: %v", err)
		mustNotExist(t, m.NetNSPath(req.ID))
		if hits := iptablesMentions(t, req.ID); len(hits) > 0 {
			t.Errorf("iptables rules left:\n%s", strings.Join(hits, "\n"))
		}
		leases, _ := os.ReadDir(filepath.Join(cfg.StateDir, "ipam", "drover-"+good.Name))
		for _, l := range leases {
			if net.ParseIP(l.Name()) != nil {
				t.Errorf("lease %s on %s left behind", l.Name(), good.Name)
			}
		}
		cache, _ := os.ReadDir(filepath.Join(cfg.StateDir, "cache", "results"))
		for _, c := range cache {
			if strings.Contains(c.Name(), req.ID) {
				t.Errorf("CNI cache entry %s left behind", c.Name())
			}
		}
	})
}

func TestDetachUnknownTask(t *testing.T) {
	m, _ := newManager(t)
	n := newNetwork(t, m)
	req := network.Request{
		ID:       taskID(t, "never"),
		Networks: []network.Network{n},
		Ports:    []network.PortMapping{{HostPort: freePort(t), ContainerPort: 80}},
	}
	if err := m.Detach(ctx(t), req); err != nil {
		t.Fatalf("Detach of a task never attached: %v", err)
	}
}

// After a reboot (or someone unmounting it) the namespace is gone but the
// cache is not; Detach must still remove the task's masquerade and DNAT rules
// and free its address.
func TestDetachAfterNamespaceLost(t *testing.T) {
	m, cfg := newManager(t)
	n := newNetwork(t, m)
	req := network.Request{
		ID:       taskID(t, "a"),
		Networks: []network.Network{n},
		Ports:    []network.PortMapping{{HostPort: freePort(t), ContainerPort: 80}},
	}
	res := attach(t, m, req)
	if len(iptablesMentions(t, req.ID)) == 0 {
		t.Fatalf("no iptables rule mentions %s while attached", req.ID)
	}
	if err := unix.Unmount(res.NetNSPath, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if err := m.Detach(ctx(t), network.Request{ID: req.ID}); err != nil {
		t.Fatalf("Detach: %v", err)
	}
	if hits := iptablesMentions(t, req.ID); len(hits) > 0 {
		t.Errorf("iptables rules left after Detach:\n%s", strings.Join(hits, "\n"))
	}
	mustNotExist(t, res.NetNSPath)
	if _, err := os.Stat(filepath.Join(cfg.StateDir, "ipam", "drover-"+n.Name, res.IPs[n.Name].String())); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lease of %v still held (err %v)", res.IPs[n.Name], err)
	}
}

// Many tasks attaching at once to a network whose bridge does not exist yet:
// one bridge, distinct addresses, and every one can be detached.
func TestConcurrentAttach(t *testing.T) {
	m, _ := newManager(t)
	n := newNetwork(t, m)
	const tasks = 8
	ips := make([]net.IP, tasks)
	errs := make([]error, tasks)
	reqs := make([]network.Request, tasks)
	done := make(chan int)
	for i := range tasks {
		reqs[i] = network.Request{
			ID:       taskID(t, fmt.Sprint(i)),
			Networks: []network.Network{n},
			Ports:    []network.PortMapping{{HostPort: freePort(t), ContainerPort: 80}},
		}
		go func() {
			var res network.Result
			res, errs[i] = m.Attach(ctx(t), reqs[i])
			ips[i] = res.IPs[n.Name]
			done <- i
		}()
	}
	for range tasks {
		<-done
	}
	seen := map[string]bool{}
	for i := range tasks {
		if errs[i] != nil {
			t.Errorf("Attach %d: %v", i, errs[i])
			continue
		}
		t.Cleanup(func() { _ = m.Detach(context.Background(), reqs[i]) })
		if seen[ips[i].String()] {
			t.Errorf("address %v given twice", ips[i])
		}
		seen[ips[i].String()] = true
	}
	for i := range tasks {
		go func() { errs[i] = m.Detach(ctx(t), reqs[i]); done <- i }()
	}
	for range tasks {
		<-done
	}
	for i := range tasks {
		if errs[i] != nil {
			t.Errorf("Detach %d: %v", i, errs[i])
		}
		if hits := iptablesMentions(t, reqs[i].ID); len(hits) > 0 {
			t.Errorf("iptables rules left for %s:\n%s", reqs[i].ID, strings.Join(hits, "\n"))
		}
	}
}

// Replicas of one service (same Group) share a host port: the first one
// answers, and when it goes the next takes over.
func TestReplicasShareHostPort(t *testing.T) {
	m, _ := newManager(t)
	n := newNetwork(t, m)
	hostPort := freePort(t)
	ports := []network.PortMapping{{HostPort: hostPort, ContainerPort: 8080, Protocol: "tcp", Group: "app/web"}}
	first := network.Request{ID: taskID(t, "web1"), Networks: []network.Network{n}, Ports: ports}
	second := network.Request{ID: taskID(t, "web2"), Networks: []network.Network{n}, Ports: ports}
	for _, req := range []network.Request{first, second} {
		res, err := m.Attach(ctx(t), req)
		if err != nil {
			t.Fatalf("Attach %s: %v", req.ID, err)
		}
		req := req
		t.Cleanup(func() { _ = m.Detach(context.Background(), req) })
		serve(t, res.NetNSPath, 8080, "hello from "+req.ID)
	}
	addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(hostPort))
	if got, err := dialHost(addr); err != nil || got != "hello from "+first.ID {
		t.Fatalf("dial %s: %q, %v; want the first replica", addr, got, err)
	}
	if err := m.Detach(ctx(t), first); err != nil {
		t.Fatal(err)
	}
	if got, err := dialHost(addr); err != nil || got != "hello from "+second.ID {
		t.Fatalf("after the first replica went, dial %s: %q, %v; want the second", addr, got, err)
	}
	// Another service still cannot take the port.
	other := network.Request{ID: taskID(t, "api"), Networks: []network.Network{n},
		Ports: []network.PortMapping{{HostPort: hostPort, ContainerPort: 8080, Protocol: "tcp", Group: "app/api"}}}
	if _, err := m.Attach(ctx(t), other); !errors.Is(err, api.ErrConflict) {
		t.Errorf("Attach of another service on the same port: %v, want ErrConflict", err)
	}
}
