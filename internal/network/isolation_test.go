package network_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/network"
	"github.com/drover-org/drover/internal/testenv"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// blockedWithin is how long a connection that the firewall drops is given.
const blockedWithin = 1500 * time.Millisecond

// dialFromWithin is dialFrom with a shorter timeout, for dials that must fail.
func dialFromWithin(nsPath, addr string, d time.Duration) (string, error) {
	var c net.Conn
	err := inNetNS(nsPath, func() error {
		var err error
		c, err = net.DialTimeout("tcp4", addr, d)
		return err
	})
	if err != nil {
		return "", err
	}
	return readGreeting(c)
}

func mustReach(t *testing.T, from, addr, want string) {
	t.Helper()
	if got, err := dialFrom(from, addr); err != nil || got != want {
		t.Errorf("dial %s: got %q, %v; want %q", addr, got, err, want)
	}
}

func mustNotReach(t *testing.T, from, addr string) {
	t.Helper()
	if got, err := dialFromWithin(from, addr, blockedWithin); err == nil {
		t.Errorf("dial %s succeeded (%q); it must be blocked", addr, got)
	}
}

// outside is a stand-in for the world beyond the host: a namespace joined to
// the host by a veth that is not one of Drover's bridges, with its own /24.
type outside struct {
	nsPath string
	ip     net.IP
}

func newOutside(t *testing.T) outside {
	t.Helper()
	testenv.RequireBinary(t, "ip")
	k := netSeq.Add(1)
	if k > 250 {
		t.Fatal("out of test subnets")
	}
	name := fmt.Sprintf("drvt-%d-%d", os.Getpid(), k)
	veth := fmt.Sprintf("dto%d-%d", os.Getpid()%10000, k)
	host, peer := fmt.Sprintf("10.251.%d.1", k), fmt.Sprintf("10.251.%d.2", k)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", name)
	t.Cleanup(func() {
		_ = exec.Command("ip", "netns", "del", name).Run() // takes the veth with it
		if l, err := netlink.LinkByName(veth); err == nil {
			_ = netlink.LinkDel(l)
		}
	})
	run("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name)
	run("addr", "add", host+"/24", "dev", veth)
	run("link", "set", veth, "up")
	run("-n", name, "addr", "add", peer+"/24", "dev", "eth0")
	run("-n", name, "link", "set", "eth0", "up")
	run("-n", name, "link", "set", "lo", "up")
	run("-n", name, "route", "add", "default", "via", host)
	return outside{nsPath: filepath.Join("/run/netns", name), ip: net.ParseIP(peer)}
}

// hostListener answers on the host's own address, like a service of the host.
func hostListener(t *testing.T, ip net.IP, greeting string) string {
	t.Helper()
	l, err := net.Listen("tcp4", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		t.Fatal(err)
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
	return l.Addr().String()
}

func TestNetworksAreIsolated(t *testing.T) {
	m, _ := newManager(t)
	front, back := newNetwork(t, m), newNetwork(t, m)
	hostPort := freePort(t)
	a := attach(t, m, network.Request{ID: taskID(t, "a"), Networks: []network.Network{front}})
	a2 := attach(t, m, network.Request{ID: taskID(t, "a2"), Networks: []network.Network{front}})
	b := attach(t, m, network.Request{ID: taskID(t, "b"), Networks: []network.Network{back},
		Ports: []network.PortMapping{{HostPort: hostPort, ContainerPort: 8080}}})
	both := attach(t, m, network.Request{ID: taskID(t, "both"), Networks: []network.Network{front, back}})
	serve(t, a.NetNSPath, 7000, "hello from a")
	serve(t, b.NetNSPath, 7000, "hello from b")
	serve(t, b.NetNSPath, 8080, "published b")
	aAddr := net.JoinHostPort(a.IPs[front.Name].String(), "7000")
	bAddr := net.JoinHostPort(b.IPs[back.Name].String(), "7000")

	for _, br := range []string{front.Bridge, back.Bridge} {
		if len(iptablesMentions(t, br)) == 0 {
			t.Fatalf("no iptables rule names bridge %s", br)
		}
	}
	// Same network: open. Across networks: closed, both ways.
	mustReach(t, a2.NetNSPath, aAddr, "hello from a")
	mustNotReach(t, b.NetNSPath, aAddr)
	mustNotReach(t, a.NetNSPath, bAddr)
	// A task on both networks reaches both, each on its own interface.
	mustReach(t, both.NetNSPath, aAddr, "hello from a")
	mustReach(t, both.NetNSPath, bAddr, "hello from b")

	// A published port is open to the host, to the world and so to tasks
	// on other networks too (through DNAT, which the rules let pass).
	port := fmt.Sprint(hostPort)
	for _, host := range []string{"127.0.0.1", hostAddr(t).String()} {
		if got, err := dialHost(net.JoinHostPort(host, port)); err != nil || got != "published b" {
			t.Errorf("host dial %s:%s: %q, %v", host, port, got, err)
		}
	}
	mustReach(t, a.NetNSPath, net.JoinHostPort(hostAddr(t).String(), port), "published b")
	// Tasks still get out of the host.
	o := newOutside(t)
	serve(t, o.nsPath, 7100, "hello from outside")
	mustReach(t, a.NetNSPath, net.JoinHostPort(o.ip.String(), "7100"), "hello from outside")
}

func TestRemoveNetworkRemovesIsolationRules(t *testing.T) {
	m, _ := newManager(t)
	n, internal := newNetwork(t, m), newNetwork(t, m)
	internal.Internal = true
	for _, nw := range []network.Network{n, internal} {
		req := network.Request{ID: taskID(t, nw.Name), Networks: []network.Network{nw}}
		if _, err := m.Attach(ctx(t), req); err != nil {
			t.Fatal(err)
		}
		if err := m.Detach(ctx(t), req); err != nil {
			t.Fatal(err)
		}
		if len(iptablesMentions(t, nw.Bridge)) == 0 {
			t.Fatalf("no iptables rule names bridge %s", nw.Bridge)
		}
		for i := 0; i < 2; i++ {
			if err := m.RemoveNetwork(ctx(t), nw); err != nil {
				t.Fatalf("RemoveNetwork #%d: %v", i+1, err)
			}
		}
		if hits := iptablesMentions(t, nw.Bridge); len(hits) > 0 {
			t.Errorf("rules of %s left after RemoveNetwork:\n%s", nw.Bridge, strings.Join(hits, "\n"))
		}
	}
}

func TestInternalNetwork(t *testing.T) {
	m, _ := newManager(t)
	in, open := newNetwork(t, m), newNetwork(t, m)
	in.Internal = true
	p1 := attach(t, m, network.Request{ID: taskID(t, "p1"), Networks: []network.Network{in}})
	p2 := attach(t, m, network.Request{ID: taskID(t, "p2"), Networks: []network.Network{in}})
	q := attach(t, m, network.Request{ID: taskID(t, "q"), Networks: []network.Network{open}})
	o := newOutside(t)
	serve(t, o.nsPath, 7100, "hello from outside")
	serve(t, p2.NetNSPath, 7000, "hello from p2")
	serve(t, q.NetNSPath, 7000, "hello from q")
	outAddr := net.JoinHostPort(o.ip.String(), "7100")
	hostSvc := hostListener(t, hostAddr(t), "hello from the host")

	if devs := nsDefaultRouteDev(t, p1.NetNSPath); len(devs) != 0 {
		t.Errorf("task on an internal network has default routes via %v", devs)
	}
	if hits := iptablesMentions(t, p1.NetNSPath[strings.LastIndex(p1.NetNSPath, "/")+1:]); len(hits) > 0 {
		t.Errorf("rules for a task on an internal network (masquerade?):\n%s", strings.Join(hits, "\n"))
	}
	mustReach(t, p1.NetNSPath, net.JoinHostPort(p2.IPs[in.Name].String(), "7000"), "hello from p2")
	mustNotReach(t, p1.NetNSPath, outAddr)
	mustNotReach(t, p1.NetNSPath, hostSvc)
	// The same from a normal network works, so the setup is sound.
	mustReach(t, q.NetNSPath, outAddr, "hello from outside")
	mustReach(t, q.NetNSPath, hostSvc, "hello from the host")

	// A task that adds a default route itself (it would need NET_ADMIN)
	// is still stopped by the host's forwarding rules.
	h, err := netns.GetFromPath(p1.NetNSPath)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	eth0, err := nl.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := nl.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: net.ParseIP(in.Gateway)}); err != nil {
		t.Fatalf("add default route in p1: %v", err)
	}
	mustNotReach(t, p1.NetNSPath, outAddr)
	mustNotReach(t, p1.NetNSPath, net.JoinHostPort(q.IPs[open.Name].String(), "7000"))
	// Nor can anyone come in from another network.
	mustNotReach(t, q.NetNSPath, net.JoinHostPort(p2.IPs[in.Name].String(), "7000"))

	// Networks() gives the network back as internal.
	nets, err := m.Networks()
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range nets {
		if got.Name == in.Name && !got.Internal {
			t.Errorf("Networks() lists %s as not internal", in.Name)
		}
	}
}

// A task on an internal network and a normal one gets its default route and
// its published ports on the normal one, whatever the order.
func TestInternalFirstUsesNextNetworkForRoute(t *testing.T) {
	m, _ := newManager(t)
	in, open := newNetwork(t, m), newNetwork(t, m)
	in.Internal = true
	hostPort := freePort(t)
	res := attach(t, m, network.Request{ID: taskID(t, "a"), Networks: []network.Network{in, open},
		Ports: []network.PortMapping{{HostPort: hostPort, ContainerPort: 8080}}})
	serve(t, res.NetNSPath, 8080, "published")
	if devs := nsDefaultRouteDev(t, res.NetNSPath); len(devs) != 1 || devs[0] != "eth1" {
		t.Errorf("default routes via %v, want [eth1]", devs)
	}
	if got, err := dialHost(net.JoinHostPort("127.0.0.1", fmt.Sprint(hostPort))); err != nil || got != "published" {
		t.Errorf("published port: %q, %v", got, err)
	}
	_, err := m.Attach(ctx(t), network.Request{ID: taskID(t, "b"), Networks: []network.Network{in},
		Ports: []network.PortMapping{{HostPort: freePort(t), ContainerPort: 80}}})
	if !errors.Is(err, api.ErrInvalid) {
		t.Errorf("ports on an internal network only: err %v, want ErrInvalid", err)
	}
}

func TestStaticAddress(t *testing.T) {
	m, cfg := newManager(t)
	n, other := newNetwork(t, m), newNetwork(t, m)
	want := strings.TrimSuffix(n.Gateway, ".1") + ".77"
	wantOther := strings.TrimSuffix(other.Gateway, ".1") + ".200"
	req := network.Request{ID: taskID(t, "a"), Networks: []network.Network{n, other},
		IPs: map[string]string{n.Name: want, other.Name: wantOther}}
	res := attach(t, m, req)
	if got := res.IPs[n.Name].String(); got != want {
		t.Errorf("IP on %s = %s, want %s", n.Name, got, want)
	}
	if got := res.IPs[other.Name].String(); got != wantOther {
		t.Errorf("IP on %s = %s, want %s", other.Name, got, wantOther)
	}
	if addrs := nsAddrs(t, res.NetNSPath, "eth0"); !containsIP(addrs, net.ParseIP(want)) {
		t.Errorf("eth0 addresses %v lack %s", addrs, want)
	}

	// Taken: a clear conflict naming the holder, and nothing left behind.
	taken := network.Request{ID: taskID(t, "b"), Networks: []network.Network{n}, IPs: map[string]string{n.Name: want}}
	_, err := m.Attach(ctx(t), taken)
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), req.ID) {
		t.Errorf("taken address: err %v, want ErrConflict naming %s and %s", err, want, req.ID)
	}
	t.Logf("error as the user sees it: %v", err)
	mustNotExist(t, m.NetNSPath(taken.ID))

	for _, tc := range []struct{ name, net, addr string }{
		{"outside subnet", n.Name, "10.252.0.5"},
		{"gateway", n.Name, n.Gateway},
		{"broadcast", n.Name, strings.TrimSuffix(n.Gateway, ".1") + ".255"},
		{"not an address", n.Name, "ten"},
		{"network not joined", "nope", want},
	} {
		bad := network.Request{ID: taskID(t, "c"), Networks: []network.Network{n}, IPs: map[string]string{tc.net: tc.addr}}
		if _, err := m.Attach(ctx(t), bad); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%s: err %v, want ErrInvalid", tc.name, err)
		} else if tc.name == "outside subnet" {
			t.Logf("error as the user sees it: %v", err)
		}
		mustNotExist(t, m.NetNSPath(bad.ID))
	}

	// Once the holder goes, the address is free again.
	if err := m.Detach(ctx(t), req); err != nil {
		t.Fatal(err)
	}
	mustNotExist(t, filepath.Join(cfg.StateDir, "ipam", "drover-"+n.Name, want))
	res2 := attach(t, m, taken)
	if got := res2.IPs[n.Name].String(); got != want {
		t.Errorf("after Detach: IP %s, want %s", got, want)
	}
	// And dynamic addresses keep away from it.
	dyn := attach(t, m, network.Request{ID: taskID(t, "d"), Networks: []network.Network{n}})
	if dyn.IPs[n.Name].String() == want {
		t.Errorf("dynamic address %s collides with the static one", want)
	}
}

// driver_opts com.docker.network.driver.mtu reaches the task's interface.
func TestNetworkMTU(t *testing.T) {
	m, _ := newManager(t)
	n := newNetwork(t, m)
	n.MTU = 1280
	res := attach(t, m, network.Request{ID: taskID(t, "a"), Networks: []network.Network{n}})
	if got := nsLinks(t, res.NetNSPath)["eth0"].Attrs().MTU; got != 1280 {
		t.Errorf("eth0 MTU = %d, want 1280", got)
	}
	br, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		t.Fatal(err)
	}
	if got := br.Attrs().MTU; got != 1280 {
		t.Errorf("bridge MTU = %d, want 1280", got)
	}
	nets, err := m.Networks()
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range nets {
		if got.Name == n.Name && got.MTU != 1280 {
			t.Errorf("Networks() gives MTU %d, want 1280", got.MTU)
		}
	}
}

// network_mode: none.
func TestAttachWithoutNetworks(t *testing.T) {
	m, _ := newManager(t)
	req := network.Request{ID: taskID(t, "none")}
	res, err := m.Attach(ctx(t), req)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if len(res.IPs) != 0 || res.NetNSPath != m.NetNSPath(req.ID) {
		t.Errorf("result %+v", res)
	}
	links := nsLinks(t, res.NetNSPath)
	if lo, ok := links["lo"]; len(links) != 1 || !ok || lo.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("links %v, want only lo, up", links)
	}
	serve(t, res.NetNSPath, 7000, "alone")
	if got, err := dialFrom(res.NetNSPath, "127.0.0.1:7000"); err != nil || got != "alone" {
		t.Errorf("loopback: %q, %v", got, err)
	}
	if err := m.Detach(ctx(t), req); err != nil {
		t.Fatalf("Detach: %v", err)
	}
	mustNotExist(t, res.NetNSPath)
	if _, err := m.Attach(ctx(t), network.Request{ID: taskID(t, "ports"),
		Ports: []network.PortMapping{{HostPort: 8080, ContainerPort: 80}}}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("ports without a network: err %v, want ErrInvalid", err)
	}
}

// Rules whose bridge and network list are both gone (the state dir was
// wiped) are still found, and RemoveNetwork clears them.
func TestNetworksFindsOrphanedRules(t *testing.T) {
	m, cfg := newManager(t)
	n := newNetwork(t, m)
	req := network.Request{ID: taskID(t, "a"), Networks: []network.Network{n}}
	if _, err := m.Attach(ctx(t), req); err != nil {
		t.Fatal(err)
	}
	if err := m.Detach(ctx(t), req); err != nil {
		t.Fatal(err)
	}
	if l, err := netlink.LinkByName(n.Bridge); err == nil {
		_ = netlink.LinkDel(l)
	}
	fresh := cfg
	fresh.StateDir = t.TempDir()
	m2, err := network.New(fresh)
	if err != nil {
		t.Fatal(err)
	}
	nets, err := m2.Networks()
	if err != nil {
		t.Fatal(err)
	}
	var found *network.Network
	for i := range nets {
		if nets[i].Bridge == n.Bridge {
			found = &nets[i]
		}
	}
	if found == nil || found.Name != "" {
		t.Fatalf("Networks() = %+v, want bridge %s without a name", nets, n.Bridge)
	}
	if err := m2.RemoveNetwork(ctx(t), *found); err != nil {
		t.Fatal(err)
	}
	if hits := iptablesMentions(t, n.Bridge); len(hits) > 0 {
		t.Errorf("rules of %s left:\n%s", n.Bridge, strings.Join(hits, "\n"))
	}
}
