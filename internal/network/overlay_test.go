package network_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/drover-org/drover/internal/network"
	"github.com/drover-org/drover/internal/testenv"
	"github.com/vishvananda/netlink"
)

// EnsureOverlay makes the VXLAN device, its routes to the peers' slices and
// its rules; a second call with fewer peers forgets the others;
// RemoveOverlay leaves nothing behind. (Traffic between hosts is proven by
// the cluster tests.)
func TestOverlayDeviceRoutesAndRules(t *testing.T) {
	m, _ := newManager(t)
	k, name, dev := newOverlayName(t)
	o := network.Overlay{
		Network: name, Bridge: fmt.Sprintf("drv-t%d-%d", os.Getpid()%10000, k), VNI: 4000000 + int(k) + os.Getpid()%100000,
		Subnet: "10.250.0.0/20", LocalAddr: "127.0.0.1", LocalSubnet: "10.250.0.0/24",
		Peers: []network.Peer{{Addr: "127.0.0.2", Subnet: "10.250.1.0/24"}, {Addr: "127.0.0.3", Subnet: "10.250.2.0/24"}},
	}
	for i := 0; i < 2; i++ { // idempotent
		if err := m.EnsureOverlay(o); err != nil {
			t.Fatalf("EnsureOverlay: %v", err)
		}
	}
	l, err := netlink.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	if vx, ok := l.(*netlink.Vxlan); !ok || vx.VxlanId != o.VNI || vx.Learning {
		t.Fatalf("device %s: %+v", dev, l)
	}
	routes := func() map[string]string { return gatewayRoutes(t, l, netlink.FAMILY_V4) }
	if got := routes(); got["10.250.1.0/24"] != "10.250.1.0" || got["10.250.2.0/24"] != "10.250.2.0" {
		t.Fatalf("routes %v", got)
	}
	if len(iptablesMentions(t, dev)) < 4 {
		t.Fatalf("isolation and nat rules of %s: %v", dev, iptablesMentions(t, dev))
	}
	if nets, _ := m.OverlayNetworks(); len(nets) != 1 || nets[0] != name {
		t.Fatalf("OverlayNetworks %v", nets)
	}

	o.Peers = o.Peers[:1]
	if err := m.EnsureOverlay(o); err != nil {
		t.Fatal(err)
	}
	if got := routes(); len(got) != 1 || got["10.250.1.0/24"] == "" {
		t.Fatalf("after a peer left: routes %v", got)
	}

	// A slice outside the network is refused.
	bad := o
	bad.Peers = []network.Peer{{Addr: "127.0.0.4", Subnet: "10.9.9.0/24"}}
	if err := m.EnsureOverlay(bad); err == nil {
		t.Fatal("a peer slice outside the network was accepted")
	}

	if err := m.RemoveOverlay(name); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName(dev); err == nil {
		t.Fatal("device left behind")
	}
	if hits := iptablesMentions(t, dev); len(hits) != 0 {
		t.Fatalf("rules left behind: %v", hits)
	}
	if nets, _ := m.OverlayNetworks(); len(nets) != 0 {
		t.Fatalf("OverlayNetworks after removal: %v", nets)
	}
	if err := m.RemoveOverlay(name); err != nil {
		t.Fatalf("removing twice: %v", err)
	}
}

// On a dual-stack network the peers' IPv6 /80s are routed like their IPv4
// slices, both families get the isolation and nat rules, and all of it
// goes with the overlay.
func TestOverlayIPv6(t *testing.T) {
	m, _ := newManager(t)
	if _, err := exec.LookPath("ip6tables-save"); err != nil {
		testenv.Missing(t, "ip6tables-save: %v", err)
	}
	k, name, dev := newOverlayName(t)
	o := network.Overlay{
		Network: name, Bridge: fmt.Sprintf("drv-t%d-%d", os.Getpid()%10000, k), VNI: 4100000 + int(k) + os.Getpid()%100000,
		Subnet: "10.249.0.0/20", LocalAddr: "127.0.0.1", LocalSubnet: "10.249.0.0/24",
		Subnet6: "fd9d:6c6f:7665:77::/64", LocalSubnet6: "fd9d:6c6f:7665:77::/80",
		Peers: []network.Peer{
			{Addr: "127.0.0.2", Subnet: "10.249.1.0/24", Subnet6: "fd9d:6c6f:7665:77:1::/80"},
			{Addr: "127.0.0.3", Subnet: "10.249.2.0/24", Subnet6: "fd9d:6c6f:7665:77:2::/80"},
		},
	}
	if err := m.EnsureOverlay(o); err != nil {
		t.Fatalf("EnsureOverlay: %v", err)
	}
	l, err := netlink.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	routes6 := func() map[string]string { return gatewayRoutes(t, l, netlink.FAMILY_V6) }
	if got := routes6(); got["fd9d:6c6f:7665:77:1::/80"] != "fd9d:6c6f:7665:77:1::" || got["fd9d:6c6f:7665:77:2::/80"] != "fd9d:6c6f:7665:77:2::" {
		t.Fatalf("IPv6 routes %v", got)
	}
	ip6Rules := func() []string { return ip6tablesMentions(t, dev) }
	if hits := ip6Rules(); len(hits) < 4 || !strings.Contains(strings.Join(hits, "\n"), "fd9d:6c6f:7665:77::/64") {
		t.Fatalf("IPv6 isolation and nat rules of %s: %v", dev, hits)
	}

	o.Peers = o.Peers[:1]
	if err := m.EnsureOverlay(o); err != nil {
		t.Fatal(err)
	}
	if got := routes6(); len(got) != 1 || got["fd9d:6c6f:7665:77:1::/80"] == "" {
		t.Fatalf("after a peer left: IPv6 routes %v", got)
	}
	bad := o
	bad.Peers = []network.Peer{{Addr: "127.0.0.4", Subnet: "10.249.3.0/24", Subnet6: "fd00:1::/80"}}
	if err := m.EnsureOverlay(bad); err == nil {
		t.Fatal("a peer /80 outside the network's /64 was accepted")
	}
	if err := m.RemoveOverlay(name); err != nil {
		t.Fatal(err)
	}
	if hits := ip6Rules(); len(hits) != 0 {
		t.Fatalf("IPv6 rules left behind: %v", hits)
	}
}

// gatewayRoutes are a link's routes through a gateway: destination ->
// gateway.
func gatewayRoutes(t *testing.T, l netlink.Link, family int) map[string]string {
	t.Helper()
	rs, err := netlink.RouteList(l, family)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range rs {
		if r.Dst != nil && r.Gw != nil {
			out[r.Dst.String()] = r.Gw.String()
		}
	}
	return out
}

// newOverlayName gives a test overlay a network name of its own; its
// device is deleted when the test ends.
func newOverlayName(t *testing.T) (k int32, name, dev string) {
	k = netSeq.Add(1)
	name = fmt.Sprintf("ov%d_%d", os.Getpid()%10000, k)
	dev = network.OverlayDevice(name)
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(dev); err == nil {
			_ = netlink.LinkDel(l)
		}
	})
	return k, name, dev
}
