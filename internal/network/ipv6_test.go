package network_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/drover-org/drover/internal/network"
	"github.com/drover-org/drover/internal/testenv"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// newNetwork6 is newNetwork with an IPv6 subnet fd9d:6c6f:7665:<n>::/64 too.
func newNetwork6(t *testing.T, m *network.Manager) network.Network {
	t.Helper()
	n := newNetwork(t, m)
	k := strings.TrimPrefix(strings.TrimSuffix(n.Subnet, ".0/24"), "10.251.")
	n.Subnet6 = fmt.Sprintf("fd9d:6c6f:7665:%s::/64", k)
	n.Gateway6 = fmt.Sprintf("fd9d:6c6f:7665:%s::1", k)
	return n
}

// serve6 is serve on IPv6 (and IPv4: the socket is dual-stack).
func serve6(t *testing.T, nsPath string, port int, greeting string) {
	t.Helper()
	var l net.Listener
	err := inNetNS(nsPath, func() error {
		var err error
		l, err = net.Listen("tcp", fmt.Sprintf("[::]:%d", port))
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

// dial6 dials addr over IPv6 from the namespace at nsPath ("" for the host).
func dial6(nsPath, addr string, d time.Duration) (string, error) {
	var c net.Conn
	dial := func() error {
		var err error
		c, err = net.DialTimeout("tcp6", addr, d)
		return err
	}
	var err error
	if nsPath == "" {
		err = dial()
	} else {
		err = inNetNS(nsPath, dial)
	}
	if err != nil {
		return "", err
	}
	return readGreeting(c)
}

func mustReach6(t *testing.T, from, addr, want string) {
	t.Helper()
	if got, err := dial6(from, addr, 3*time.Second); err != nil || got != want {
		t.Errorf("dial %s: got %q, %v; want %q", addr, got, err, want)
	}
}

func mustNotReach6(t *testing.T, from, addr string) {
	t.Helper()
	if got, err := dial6(from, addr, blockedWithin); err == nil {
		t.Errorf("dial %s succeeded (%q); it must be blocked", addr, got)
	}
}

func addr6(ip net.IP, port int) string { return net.JoinHostPort(ip.String(), fmt.Sprint(port)) }

// nsNetlink opens a netlink handle in the namespace at nsPath.
func nsNetlink(t *testing.T, nsPath string) *netlink.Handle {
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
	t.Cleanup(nl.Close)
	return nl
}

// nsAddrs6 are the global IPv6 addresses of ifname in the namespace.
func nsAddrs6(t *testing.T, nsPath, ifname string) []net.IP {
	t.Helper()
	nl := nsNetlink(t, nsPath)
	l, err := nl.LinkByName(ifname)
	if err != nil {
		t.Fatalf("%s in %s: %v", ifname, nsPath, err)
	}
	addrs, err := nl.AddrList(l, netlink.FAMILY_V6)
	if err != nil {
		t.Fatal(err)
	}
	var ips []net.IP
	for _, a := range addrs {
		if a.IP.IsGlobalUnicast() {
			ips = append(ips, a.IP)
		}
	}
	return ips
}

// nsDefaultRoutes6 are the IPv6 default routes in the namespace, as
// "dev via gateway".
func nsDefaultRoutes6(t *testing.T, nsPath string) []string {
	t.Helper()
	nl := nsNetlink(t, nsPath)
	routes, err := nl.RouteList(nil, netlink.FAMILY_V6)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		dev := "?"
		if l, err := nl.LinkByIndex(r.LinkIndex); err == nil {
			dev = l.Attrs().Name
		}
		out = append(out, fmt.Sprintf("%s via %s", dev, r.Gw))
	}
	return out
}

// ip6tablesMentions returns the ip6tables rule lines (every table) that
// name s.
func ip6tablesMentions(t *testing.T, s string) []string {
	t.Helper()
	out, err := exec.Command("ip6tables-save").CombinedOutput()
	if err != nil {
		t.Fatalf("ip6tables-save: %v\n%s", err, out)
	}
	var hits []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, s) {
			hits = append(hits, line)
		}
	}
	return hits
}

// hostAddr6 is a global IPv6 address of the host's IPv6 default-route
// interface (fd00::2 on the test machines).
func hostAddr6(t *testing.T) net.IP {
	t.Helper()
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V6)
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
		addrs, err := netlink.AddrList(link, netlink.FAMILY_V6)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if a.IP.IsGlobalUnicast() {
				return a.IP
			}
		}
	}
	testenv.Missing(t, "host has no IPv6 default route with a global address")
	return nil
}

func inSubnet(cidr string, ip net.IP) bool {
	_, n, err := net.ParseCIDR(cidr)
	return err == nil && ip != nil && n.Contains(ip)
}

func TestDualStackAttach(t *testing.T) {
	m, _ := newManager(t)
	n, v4 := newNetwork6(t, m), newNetwork(t, m)
	reqA := network.Request{ID: taskID(t, "a"), Networks: []network.Network{n, v4}}
	a, err := m.Attach(ctx(t), reqA)
	if err != nil {
		t.Fatal(err)
	}
	b := attach(t, m, network.Request{ID: taskID(t, "b"), Networks: []network.Network{n}})

	ip6 := a.IPs6[n.Name]
	if !inSubnet(n.Subnet6, ip6) || ip6.To4() != nil {
		t.Fatalf("IPs6[%s] = %v, want an address in %s", n.Name, ip6, n.Subnet6)
	}
	if !inSubnet(n.Subnet, a.IPs[n.Name]) {
		t.Errorf("IPs[%s] = %v, want an address in %s", n.Name, a.IPs[n.Name], n.Subnet)
	}
	if _, ok := a.IPs6[v4.Name]; ok || len(a.IPs6) != 1 {
		t.Errorf("IPs6 = %v; the IPv4-only network must have no entry", a.IPs6)
	}
	if got := nsAddrs6(t, a.NetNSPath, "eth0"); len(got) != 1 || !got[0].Equal(ip6) {
		t.Errorf("eth0 has IPv6 addresses %v, want [%s]", got, ip6)
	}
	if got := nsAddrs(t, a.NetNSPath, "eth0"); !containsIP(got, a.IPs[n.Name]) {
		t.Errorf("eth0 has IPv4 addresses %v, want %s among them", got, a.IPs[n.Name])
	}
	if got := nsAddrs6(t, a.NetNSPath, "eth1"); len(got) != 0 {
		t.Errorf("eth1 (IPv4-only network) has IPv6 addresses %v", got)
	}
	if got, want := nsDefaultRoutes6(t, a.NetNSPath), []string{"eth0 via " + n.Gateway6}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("IPv6 default routes %v, want %v", got, want)
	}
	if fwd, err := os.ReadFile("/proc/sys/net/ipv6/conf/all/forwarding"); err != nil || strings.TrimSpace(string(fwd)) != "1" {
		t.Errorf("net.ipv6.conf.all.forwarding = %q, %v; the bridge plugin should have turned it on", fwd, err)
	}
	// Masquerade covers IPv6 too.
	if hits := ip6tablesMentions(t, reqA.ID); len(hits) == 0 {
		t.Errorf("no ip6tables rule names task %s (masquerade missing?)", reqA.ID)
	}

	// The two tasks reach each other over IPv6, both ways.
	serve6(t, a.NetNSPath, 7000, "hello from a")
	serve6(t, b.NetNSPath, 7000, "hello from b")
	mustReach6(t, b.NetNSPath, addr6(ip6, 7000), "hello from a")
	mustReach6(t, a.NetNSPath, addr6(b.IPs6[n.Name], 7000), "hello from b")

	if err := m.Detach(ctx(t), reqA); err != nil {
		t.Fatal(err)
	}
	if hits := ip6tablesMentions(t, reqA.ID); len(hits) > 0 {
		t.Errorf("ip6tables rules of task %s left after Detach:\n%s", reqA.ID, strings.Join(hits, "\n"))
	}
	if hits := iptablesMentions(t, reqA.ID); len(hits) > 0 {
		t.Errorf("iptables rules of task %s left after Detach:\n%s", reqA.ID, strings.Join(hits, "\n"))
	}
}

func TestDualStackNetworksAreIsolated(t *testing.T) {
	m, _ := newManager(t)
	front, back := newNetwork6(t, m), newNetwork6(t, m)
	a := attach(t, m, network.Request{ID: taskID(t, "a"), Networks: []network.Network{front}})
	a2 := attach(t, m, network.Request{ID: taskID(t, "a2"), Networks: []network.Network{front}})
	b := attach(t, m, network.Request{ID: taskID(t, "b"), Networks: []network.Network{back}})
	both := attach(t, m, network.Request{ID: taskID(t, "both"), Networks: []network.Network{front, back}})
	serve6(t, a.NetNSPath, 7000, "hello from a")
	serve6(t, b.NetNSPath, 7000, "hello from b")
	aAddr, bAddr := addr6(a.IPs6[front.Name], 7000), addr6(b.IPs6[back.Name], 7000)

	for _, br := range []string{front.Bridge, back.Bridge} {
		if len(ip6tablesMentions(t, br)) == 0 {
			t.Fatalf("no ip6tables rule names bridge %s", br)
		}
	}
	mustReach6(t, a2.NetNSPath, aAddr, "hello from a")
	mustNotReach6(t, b.NetNSPath, aAddr)
	mustNotReach6(t, a.NetNSPath, bAddr)
	mustReach6(t, both.NetNSPath, aAddr, "hello from a")
	mustReach6(t, both.NetNSPath, bAddr, "hello from b")
	// The host itself is not filtered: it reaches both.
	mustReach6(t, "", aAddr, "hello from a")
	mustReach6(t, "", bAddr, "hello from b")
}

func TestDualStackInternalNetwork(t *testing.T) {
	m, _ := newManager(t)
	in, open := newNetwork6(t, m), newNetwork6(t, m)
	in.Internal = true
	p1 := attach(t, m, network.Request{ID: taskID(t, "p1"), Networks: []network.Network{in}})
	p2 := attach(t, m, network.Request{ID: taskID(t, "p2"), Networks: []network.Network{in}})
	q := attach(t, m, network.Request{ID: taskID(t, "q"), Networks: []network.Network{open}})
	serve6(t, p2.NetNSPath, 7000, "hello from p2")
	serve6(t, q.NetNSPath, 7000, "hello from q")

	if got := nsDefaultRoutes6(t, p1.NetNSPath); len(got) != 0 {
		t.Errorf("task on an internal network has IPv6 default routes %v", got)
	}
	if hits := ip6tablesMentions(t, p1.NetNSPath[strings.LastIndex(p1.NetNSPath, "/")+1:]); len(hits) > 0 {
		t.Errorf("ip6tables rules for a task on an internal network (masquerade?):\n%s", strings.Join(hits, "\n"))
	}
	mustReach6(t, p1.NetNSPath, addr6(p2.IPs6[in.Name], 7000), "hello from p2")

	// No way out to the host's other addresses; the open network's task
	// has one.
	host6 := hostAddr6(t)
	l, err := net.Listen("tcp6", net.JoinHostPort(host6.String(), "0"))
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
			fmt.Fprintln(c, "hello from the host")
			c.Close()
		}
	}()
	mustReach6(t, q.NetNSPath, l.Addr().String(), "hello from the host")
	mustNotReach6(t, p1.NetNSPath, l.Addr().String())

	// A task that adds an IPv6 default route itself is still stopped by the
	// forwarding rules (the host's own addresses, INPUT, are not filtered:
	// see the package doc).
	nl := nsNetlink(t, p1.NetNSPath)
	eth0, err := nl.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	_, all6, _ := net.ParseCIDR("::/0")
	if err := nl.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Dst: all6, Gw: net.ParseIP(in.Gateway6)}); err != nil {
		t.Fatalf("add IPv6 default route in p1: %v", err)
	}
	mustNotReach6(t, p1.NetNSPath, addr6(q.IPs6[open.Name], 7000))
	mustNotReach6(t, q.NetNSPath, addr6(p2.IPs6[in.Name], 7000))
}

func TestDualStackRemoveNetworkRemovesRules(t *testing.T) {
	m, _ := newManager(t)
	n, internal := newNetwork6(t, m), newNetwork6(t, m)
	internal.Internal = true
	for _, nw := range []network.Network{n, internal} {
		req := network.Request{ID: taskID(t, nw.Name), Networks: []network.Network{nw}}
		if _, err := m.Attach(ctx(t), req); err != nil {
			t.Fatal(err)
		}
		if err := m.Detach(ctx(t), req); err != nil {
			t.Fatal(err)
		}
		if len(ip6tablesMentions(t, nw.Bridge)) == 0 {
			t.Fatalf("no ip6tables rule names bridge %s", nw.Bridge)
		}
		for i := 0; i < 2; i++ {
			if err := m.RemoveNetwork(ctx(t), nw); err != nil {
				t.Fatalf("RemoveNetwork #%d: %v", i+1, err)
			}
		}
		if hits := ip6tablesMentions(t, nw.Bridge); len(hits) > 0 {
			t.Errorf("ip6tables rules of %s left after RemoveNetwork:\n%s", nw.Bridge, strings.Join(hits, "\n"))
		}
		if hits := ip6tablesMentions(t, req.ID); len(hits) > 0 {
			t.Errorf("ip6tables rules of task %s left:\n%s", req.ID, strings.Join(hits, "\n"))
		}
	}
}

// portmap 1.1.1 publishes a port on the host's IPv6 addresses too when the
// task has an IPv6 address. [::1] is not among them: the kernel never
// routes ::1 out of the host (IPv6 has no route_localnet), so portmap does
// not even try.
func TestDualStackPublishedPort(t *testing.T) {
	m, _ := newManager(t)
	n, other := newNetwork6(t, m), newNetwork6(t, m)
	hostPort := freePort(t)
	req := network.Request{ID: taskID(t, "a"), Networks: []network.Network{n},
		Ports: []network.PortMapping{{HostPort: hostPort, ContainerPort: 8080}}}
	a, err := m.Attach(ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	o := attach(t, m, network.Request{ID: taskID(t, "o"), Networks: []network.Network{other}})
	serve6(t, a.NetNSPath, 8080, "published")
	port := int(hostPort)
	host6 := hostAddr6(t)

	mustReach6(t, "", addr6(host6, port), "published")
	// From a task on another network, through DNAT (the isolation rules let
	// it pass).
	mustReach6(t, o.NetNSPath, addr6(host6, port), "published")
	// IPv4 as before.
	if got, err := dialHost(net.JoinHostPort("127.0.0.1", fmt.Sprint(port))); err != nil || got != "published" {
		t.Errorf("127.0.0.1:%d: %q, %v", port, got, err)
	}
	if got, err := dial6("", addr6(net.IPv6loopback, port), blockedWithin); err == nil {
		t.Logf("[::1]:%d answered %q (portmap now supports it)", port, got)
	}

	if err := m.Detach(ctx(t), req); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{req.ID, fmt.Sprintf("dport %d", port)} {
		if hits := ip6tablesMentions(t, s); len(hits) > 0 {
			t.Errorf("ip6tables rules naming %q left after Detach:\n%s", s, strings.Join(hits, "\n"))
		}
	}
	if _, err := dial6("", addr6(host6, port), blockedWithin); err == nil {
		t.Errorf("[%s]:%d still answers after Detach", host6, port)
	}
}
