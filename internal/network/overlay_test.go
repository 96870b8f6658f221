package network_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/drover-org/drover/internal/network"
	"github.com/vishvananda/netlink"
)

// EnsureOverlay makes the VXLAN device, its routes to the peers' slices and
// its rules; a second call with fewer peers forgets the others;
// RemoveOverlay leaves nothing behind. (Traffic between hosts is proven by
// the cluster tests.)
func TestOverlayDeviceRoutesAndRules(t *testing.T) {
	m, _ := newManager(t)
	k := netSeq.Add(1)
	name := fmt.Sprintf("ov%d_%d", os.Getpid()%10000, k)
	dev := network.OverlayDevice(name)
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(dev); err == nil {
			_ = netlink.LinkDel(l)
		}
	})
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
	routes := func() map[string]string {
		rs, err := netlink.RouteList(l, netlink.FAMILY_V4)
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
