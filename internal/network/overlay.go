package network

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/drover-org/drover/api"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Overlays connect one network across hosts, the way flannel's VXLAN
// backend does, with a VXLAN device per network (its own VNI, so networks
// stay apart on the wire too):
//
//   - each host's bridge holds the host's slice of the network (say
//     10.192.3.0/24, gateway .1); the VXLAN device holds the slice's
//     network address (10.192.3.0/32) and a MAC derived from the VNI and
//     the host's address, so peers can compute it;
//   - for every other host's slice: a route "slice via slice.0 dev VXLAN
//     onlink", a permanent neighbour entry slice.0 -> that host's MAC, and a
//     forwarding entry MAC -> that host's address. Nothing is learnt or
//     flooded: what the control plane says is all there is;
//   - on a dual-stack network, each host's /80 of the network's /64 the
//     same way: a route "/80 via its first address dev VXLAN onlink" and
//     a permanent neighbour entry for that address.
//
// Traffic between slices of one network is not masqueraded (a nat rule
// exempts the network from the bridge plugin's masquerade), so tasks see
// each other's real addresses. The isolation chains (isolation.go) learn
// the VXLAN device as part of its network: the bridge and its device
// forward to each other, and nothing else enters or leaves through the
// device.

// OverlayPort is the UDP port VXLAN uses between hosts (IANA's).
const OverlayPort = 4789

// OverlayPrefix starts the name of every VXLAN device of ours.
const OverlayPrefix = "drvx-"

// vxlanOverhead is what VXLAN over IPv4 adds to a frame: outer IPv4 (20),
// UDP (8), VXLAN (8) and the inner Ethernet header (14).
const vxlanOverhead = 50

// overlayNATChain exempts overlay traffic from masquerading.
const overlayNATChain = "DROVER-OVERLAY"

// Overlay is this host's part of a network that spans hosts.
type Overlay struct {
	Network     string // full name, as Network.Name
	Bridge      string // the network's bridge on this host
	Internal    bool
	VNI         int    // 1 to 2^24-1
	Subnet      string // the whole network, e.g. 10.192.0.0/20
	LocalAddr   string // this host's address that peers send to
	LocalSubnet string // this host's slice, e.g. 10.192.3.0/24
	Peers       []Peer
	// A dual-stack network's /64 and this host's /80 of it; the peers'
	// /80s are routed like their IPv4 slices.
	Subnet6      string
	LocalSubnet6 string
}

// Peer is another host's slice of the network.
type Peer struct {
	Addr    string // the host's address
	Subnet  string // its slice
	Subnet6 string // its /80, on a dual-stack network
}

// OverlayDevice is the VXLAN device name of a network (at most 15
// characters).
func OverlayDevice(network string) string {
	sum := sha256.Sum256([]byte(network))
	return OverlayPrefix + hex.EncodeToString(sum[:])[:10]
}

// vtepMAC is the VXLAN device's MAC on the host with address addr: every
// host computes every other host's.
func vtepMAC(vni int, addr string) net.HardwareAddr {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%d/%s", vni, addr)))
	mac := net.HardwareAddr(append([]byte{0x02}, sum[:5]...)) // locally administered, unicast
	return mac
}

func validateOverlay(o Overlay) (local netip.Addr, subnet, slice netip.Prefix, err error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("overlay of network %q: %s: %w", o.Network, fmt.Sprintf(format, a...), api.ErrInvalid)
	}
	if !cniName.MatchString(o.Network) {
		return local, subnet, slice, bad("name must match %s", cniName)
	}
	if o.VNI < 1 || o.VNI >= 1<<24 {
		return local, subnet, slice, bad("VNI %d is outside 1 to 16777215", o.VNI)
	}
	if local, err = netip.ParseAddr(o.LocalAddr); err != nil || !local.Is4() {
		return local, subnet, slice, bad("local address %q is not IPv4", o.LocalAddr)
	}
	if subnet, err = netip.ParsePrefix(o.Subnet); err != nil || !subnet.Addr().Is4() {
		return local, subnet, slice, bad("subnet %q is not an IPv4 prefix", o.Subnet)
	}
	if slice, err = netip.ParsePrefix(o.LocalSubnet); err != nil || !subnet.Contains(slice.Addr()) || slice.Bits() < subnet.Bits() {
		return local, subnet, slice, bad("local slice %q is not within %s", o.LocalSubnet, o.Subnet)
	}
	for _, p := range o.Peers {
		a, err1 := netip.ParseAddr(p.Addr)
		ps, err2 := netip.ParsePrefix(p.Subnet)
		if err1 != nil || !a.Is4() || err2 != nil || !subnet.Contains(ps.Addr()) || ps.Bits() < subnet.Bits() || ps.Overlaps(slice) {
			return local, subnet, slice, bad("peer %s with slice %s: want an IPv4 address and a slice of %s other than ours", p.Addr, p.Subnet, o.Subnet)
		}
	}
	return local, subnet, slice.Masked(), nil
}

// validateOverlay6 checks the IPv6 part of o and returns the network's
// /64, or an invalid prefix when the network is IPv4 only.
func validateOverlay6(o Overlay) (netip.Prefix, error) {
	if o.Subnet6 == "" {
		return netip.Prefix{}, nil
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("overlay of network %q: %s: %w", o.Network, fmt.Sprintf(format, a...), api.ErrInvalid)
	}
	subnet, err := netip.ParsePrefix(o.Subnet6)
	if err != nil || !subnet.Addr().Is6() || subnet.Addr().Is4In6() {
		return subnet, bad("subnet %q is not an IPv6 prefix", o.Subnet6)
	}
	inside := func(s string) (netip.Prefix, bool) {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err == nil && subnet.Contains(p.Addr()) && p.Bits() > subnet.Bits()
	}
	local, ok := inside(o.LocalSubnet6)
	if !ok {
		return subnet, bad("local IPv6 slice %q is not within %s", o.LocalSubnet6, o.Subnet6)
	}
	for _, p := range o.Peers {
		if p.Subnet6 == "" {
			continue
		}
		if ps, ok := inside(p.Subnet6); !ok || ps.Overlaps(local) {
			return subnet, bad("peer %s with IPv6 slice %s: want a slice of %s other than ours", p.Addr, p.Subnet6, o.Subnet6)
		}
	}
	return subnet.Masked(), nil
}

func (m *Manager) overlayDir() string { return filepath.Join(m.stateDir, "overlays") }

// EnsureOverlay creates or updates the network's VXLAN device, its routes
// to the peers' slices and the rules that keep it apart from other
// networks. Peers that are not listed any more are forgotten. It is
// idempotent.
func (m *Manager) EnsureOverlay(o Overlay) error {
	local, subnet, slice, err := validateOverlay(o)
	if err != nil {
		return err
	}
	subnet6, err := validateOverlay6(o)
	if err != nil {
		return err
	}
	dev := OverlayDevice(o.Network)
	if err := os.MkdirAll(m.overlayDir(), 0o700); err != nil {
		return err
	}
	// Recorded first, so a half-made device is still ours to remove.
	if err := os.WriteFile(filepath.Join(m.overlayDir(), dev), []byte(o.Network+"\n"), 0o600); err != nil {
		return err
	}
	link, err := m.ensureVXLAN(dev, o.VNI, local, slice)
	if err != nil {
		return fmt.Errorf("overlay of network %q: %w", o.Network, err)
	}
	if err := m.syncPeers(link, o); err != nil {
		return fmt.Errorf("overlay of network %q: %w", o.Network, err)
	}
	if err := m.ensureOverlayRules(o, dev, subnet, subnet6); err != nil {
		return fmt.Errorf("overlay of network %q: %w", o.Network, err)
	}
	return nil
}

// ensureVXLAN makes the device as wanted, replacing one that differs.
func (m *Manager) ensureVXLAN(dev string, vni int, local netip.Addr, slice netip.Prefix) (netlink.Link, error) {
	mac := vtepMAC(vni, local.String())
	under, underMTU := underlay(local)
	if l, err := netlink.LinkByName(dev); err == nil {
		vx, ok := l.(*netlink.Vxlan)
		if !ok || vx.VxlanId != vni || !vx.SrcAddr.Equal(net.IP(local.AsSlice())) || vx.HardwareAddr.String() != mac.String() {
			if err := netlink.LinkDel(l); err != nil {
				return nil, fmt.Errorf("replace device %s: %w", dev, err)
			}
		}
	}
	l, err := netlink.LinkByName(dev)
	if err != nil {
		vx := &netlink.Vxlan{
			LinkAttrs: netlink.LinkAttrs{Name: dev, MTU: underMTU - vxlanOverhead, HardwareAddr: mac},
			VxlanId:   vni,
			SrcAddr:   net.IP(local.AsSlice()),
			Port:      OverlayPort,
			Learning:  false,
		}
		if under != nil {
			vx.VtepDevIndex = under.Attrs().Index
		}
		if err := netlink.LinkAdd(vx); err != nil {
			if errors.Is(err, unix.EEXIST) {
				return nil, fmt.Errorf("create VXLAN device %s (VNI %d): another device already uses that VNI on this host: %w", dev, vni, api.ErrConflict)
			}
			return nil, fmt.Errorf("create VXLAN device %s (VNI %d): %w", dev, vni, err)
		}
		if l, err = netlink.LinkByName(dev); err != nil {
			return nil, err
		}
	}
	// The slice's network address identifies this host's end; peers route
	// to it onlink.
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: net.IP(slice.Addr().AsSlice()), Mask: net.CIDRMask(32, 32)}}
	if err := netlink.AddrReplace(l, addr); err != nil {
		return nil, fmt.Errorf("address %s on %s: %w", addr.IPNet, dev, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return nil, fmt.Errorf("set %s up: %w", dev, err)
	}
	return l, nil
}

// underlay is the link that holds addr, and its MTU (the default route's
// link's when none holds it).
func underlay(addr netip.Addr) (netlink.Link, int) {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err == nil {
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok && ip == addr {
				if l, err := netlink.LinkByIndex(a.LinkIndex); err == nil {
					return l, l.Attrs().MTU
				}
			}
		}
	}
	return nil, hostMTU()
}

// syncPeers makes the device's routes, neighbours and forwarding entries
// exactly those of o.Peers.
func (m *Manager) syncPeers(link netlink.Link, o Overlay) error {
	idx := link.Attrs().Index
	wantRoutes := map[string]bool{}
	for _, p := range o.Peers {
		mac := vtepMAC(o.VNI, p.Addr)
		fdb := &netlink.Neigh{LinkIndex: idx, Family: unix.AF_BRIDGE, State: netlink.NUD_PERMANENT, Flags: netlink.NTF_SELF,
			IP: net.ParseIP(p.Addr), HardwareAddr: mac}
		if err := netlink.NeighSet(fdb); err != nil {
			return fmt.Errorf("forwarding entry for %s: %w", p.Addr, err)
		}
		// The peer's slice, and its /80 on a dual-stack network, through
		// their first addresses.
		for _, sn := range []string{p.Subnet, p.Subnet6} {
			if sn == "" {
				continue
			}
			dst, err := routeToPeer(idx, netip.MustParsePrefix(sn).Masked(), mac)
			if err != nil {
				return fmt.Errorf("%w (peer %s)", err, p.Addr)
			}
			wantRoutes[dst] = true
		}
	}
	// What the control plane no longer lists: routes, then neighbours and
	// forwarding entries that no wanted peer has.
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := netlink.RouteList(link, fam)
		if err != nil {
			return err
		}
		for _, r := range routes {
			if r.Dst != nil && r.Gw != nil && !wantRoutes[r.Dst.String()] {
				_ = netlink.RouteDel(&r)
			}
		}
	}
	wantIP := map[string]bool{}
	for _, p := range o.Peers {
		wantIP[p.Addr] = true
		wantIP[netip.MustParsePrefix(p.Subnet).Masked().Addr().String()] = true
		if p.Subnet6 != "" {
			wantIP[netip.MustParsePrefix(p.Subnet6).Masked().Addr().String()] = true
		}
	}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6, unix.AF_BRIDGE} {
		neighs, err := netlink.NeighList(idx, fam)
		if err != nil {
			return err
		}
		for _, n := range neighs {
			if n.IP == nil || wantIP[n.IP.String()] || n.State&netlink.NUD_PERMANENT == 0 {
				continue
			}
			_ = netlink.NeighDel(&n)
		}
	}
	return nil
}

// routeToPeer routes a peer's slice (of either family) onlink through its
// first address, which a permanent neighbour entry maps to the peer's
// MAC; it returns the route's destination.
func routeToPeer(idx int, slice netip.Prefix, mac net.HardwareAddr) (string, error) {
	gw := net.IP(slice.Addr().AsSlice())
	family, bits := netlink.FAMILY_V4, 32
	if slice.Addr().Is6() {
		family, bits = netlink.FAMILY_V6, 128
	}
	neigh := &netlink.Neigh{LinkIndex: idx, Family: family, State: netlink.NUD_PERMANENT, IP: gw, HardwareAddr: mac}
	if err := netlink.NeighSet(neigh); err != nil {
		return "", fmt.Errorf("neighbour %s: %w", gw, err)
	}
	dst := &net.IPNet{IP: gw, Mask: net.CIDRMask(slice.Bits(), bits)}
	r := &netlink.Route{LinkIndex: idx, Dst: dst, Gw: gw, Flags: int(netlink.FLAG_ONLINK)}
	if err := netlink.RouteReplace(r); err != nil {
		return "", fmt.Errorf("route to %s: %w", dst, err)
	}
	return dst.String(), nil
}

// overlayRules are the isolation rules of a network's VXLAN device: at the
// top of chain 1, the bridge and the device forward to each other; after
// that, whatever comes out of the device goes through chain 2 (an
// internal network's is dropped), and chain 2 drops new connections into
// the device from elsewhere.
func overlayRules(br, dev string, internal bool) (top, tail [][]string) {
	top = [][]string{
		{isolationChain1, "-i", br, "-o", dev, "-j", "RETURN"},
		{isolationChain1, "-i", dev, "-o", br, "-j", "RETURN"},
	}
	from := []string{isolationChain1, "-i", dev, "-j", isolationChain2}
	if internal {
		from = []string{isolationChain1, "-i", dev, "-j", "DROP"}
	}
	tail = [][]string{
		from,
		{isolationChain2, "-o", dev, "-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT", "-j", "DROP"},
	}
	return top, tail
}

// ensureOverlayRules installs the isolation rules of the device, in both
// families, and the nat exemption of the network (of its IPv6 /64 too on a
// dual-stack network).
func (m *Manager) ensureOverlayRules(o Overlay, dev string, subnet, subnet6 netip.Prefix) error {
	unlock, err := m.lockIsolation()
	if err != nil {
		return err
	}
	defer unlock()
	for _, bin := range m.families() {
		if err := m.ensureOverlayRulesWith(bin, o, dev); err != nil {
			return err
		}
	}
	if err := m.ensureNATExemption(m.iptablesBin, subnet.Masked().String(), dev); err != nil {
		return err
	}
	if subnet6.IsValid() && m.ip6tablesBin != "" {
		return m.ensureNATExemption(m.ip6tablesBin, subnet6.String(), dev)
	}
	return nil
}

func (m *Manager) ensureOverlayRulesWith(bin string, o Overlay, dev string) error {
	if err := m.ensureChains(bin); err != nil {
		return err
	}
	top, tail := overlayRules(o.Bridge, dev, o.Internal)
	// A network that changed between internal and not keeps no stale rule.
	_, otherTail := overlayRules(o.Bridge, dev, !o.Internal)
	if r := otherTail[0]; m.xtablesCheck(bin, r[0], r[1:]...) {
		if _, err := m.xtables(bin, append([]string{"-D"}, r...)...); err != nil {
			return err
		}
	}
	for _, r := range top {
		if !m.xtablesCheck(bin, r[0], r[1:]...) {
			if _, err := m.xtables(bin, append([]string{"-I", r[0], "1"}, r[1:]...)...); err != nil {
				return err
			}
		}
	}
	for _, r := range tail {
		if !m.xtablesCheck(bin, r[0], r[1:]...) {
			if _, err := m.xtables(bin, append([]string{"-A"}, r...)...); err != nil {
				return err
			}
		}
	}
	return nil
}

// ensureNATExemption keeps traffic between slices of a network from being
// masqueraded (program bin: iptables or ip6tables): the bridge plugin
// masquerades whatever leaves a task's own slice.
func (m *Manager) ensureNATExemption(bin, subnet, dev string) error {
	nat := func(args ...string) (string, error) {
		return m.xtablesTable("nat", bin, args...)
	}
	if _, err := nat("-S", overlayNATChain); err != nil {
		if _, err := nat("-N", overlayNATChain); err != nil {
			return err
		}
	}
	if _, err := nat("-C", "POSTROUTING", "-j", overlayNATChain); err != nil {
		if _, err := nat("-I", "POSTROUTING", "1", "-j", overlayNATChain); err != nil {
			return err
		}
	}
	rule := []string{overlayNATChain, "-s", subnet, "-d", subnet, "-o", dev, "-j", "ACCEPT"}
	if _, err := nat(append([]string{"-C"}, rule...)...); err != nil {
		if _, err := nat(append([]string{"-A"}, rule...)...); err != nil {
			return err
		}
	}
	return nil
}

// RemoveOverlay deletes a network's VXLAN device, its routes and rules.
// Removing what is gone is fine.
func (m *Manager) RemoveOverlay(network string) error {
	return m.removeOverlayDevice(OverlayDevice(network))
}

func (m *Manager) removeOverlayDevice(dev string) error {
	if l, err := netlink.LinkByName(dev); err == nil {
		if l.Type() != "vxlan" {
			return fmt.Errorf("link %s is a %s, not a VXLAN device; not deleting it: %w", dev, l.Type(), api.ErrConflict)
		}
		if err := netlink.LinkDel(l); err != nil {
			return fmt.Errorf("delete %s: %w", dev, err)
		}
	}
	if err := m.removeIsolation(dev); err != nil {
		return err
	}
	if err := m.removeNATExemption(dev); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(m.overlayDir(), dev)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func (m *Manager) removeNATExemption(dev string) error {
	unlock, err := m.lockIsolation()
	if err != nil {
		return err
	}
	defer unlock()
	for _, bin := range m.families() {
		if err := m.removeNATExemptionWith(bin, dev); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manager) removeNATExemptionWith(bin, dev string) error {
	out, err := m.xtablesTable("nat", bin, "-S", overlayNATChain)
	if err != nil {
		return nil
	}
	left := 0
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "-A" {
			continue
		}
		if !namesInterface(f, dev) {
			left++
			continue
		}
		if _, err := m.xtablesTable("nat", bin, append([]string{"-D"}, f[1:]...)...); err != nil {
			return err
		}
	}
	if left > 0 {
		return nil
	}
	for {
		if _, err := m.xtablesTable("nat", bin, "-D", "POSTROUTING", "-j", overlayNATChain); err != nil {
			break
		}
	}
	_, _ = m.xtablesTable("nat", bin, "-X", overlayNATChain)
	return nil
}

// OverlayNetworks are the networks this Manager made overlays for and has
// not removed (by network full name), so an agent can remove the ones it
// no longer needs after a restart.
func (m *Manager) OverlayNetworks() ([]string, error) {
	entries, err := os.ReadDir(m.overlayDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(m.overlayDir(), e.Name()))
		if err != nil {
			continue
		}
		out = append(out, strings.TrimSpace(string(b)))
	}
	sort.Strings(out)
	return out, nil
}
