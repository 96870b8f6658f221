package network

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/drover-org/drover/api"
	"github.com/vishvananda/netlink"
)

// cniVersion is the spec version of our configurations; libcni 1.3 and the
// plugins 1.1.1 both speak it.
const cniVersion = "1.0.0"

// cniNamePrefix keeps our CNI network names apart from anyone else's.
const cniNamePrefix = "drover-"

// loopbackName is the CNI network name of the loopback attachment.
const loopbackName = "drover-loopback"

// BridgePrefix starts the name of every bridge the control plane gives us, so
// stale bridges can be found after a crash.
const BridgePrefix = "drv-"

// defaultMTU is used when the host has no default route to learn it from.
const defaultMTU = 1500

// CNI's rule for container ids and network names.
var cniName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`)

// confList is the JSON of our network lists; Networks reads it back.
type confList struct {
	CNIVersion string       `json:"cniVersion"`
	Name       string       `json:"name"`
	Plugins    []pluginConf `json:"plugins"`
	// Internal is ours (libcni and the plugins ignore it), so that Networks
	// can give the network back as it was.
	Internal bool `json:"droverInternal,omitempty"`
}

// pluginConf holds the fields of the bridge and portmap plugins we use.
type pluginConf struct {
	Type string `json:"type"`

	// bridge
	Bridge      string    `json:"bridge,omitempty"`
	IsGateway   bool      `json:"isGateway,omitempty"`
	IPMasq      bool      `json:"ipMasq,omitempty"`
	HairpinMode bool      `json:"hairpinMode,omitempty"`
	MTU         int       `json:"mtu,omitempty"`
	IPAM        *ipamConf `json:"ipam,omitempty"`

	// portmap
	Capabilities map[string]bool `json:"capabilities,omitempty"`
	SNAT         *bool           `json:"snat,omitempty"`
}

type ipamConf struct {
	Type    string        `json:"type"`
	Ranges  [][]ipamRange `json:"ranges"`
	Routes  []ipamRoute   `json:"routes,omitempty"`
	DataDir string        `json:"dataDir"`
}

type ipamRange struct {
	Subnet  string `json:"subnet"`
	Gateway string `json:"gateway,omitempty"`
}

type ipamRoute struct {
	Dst string `json:"dst"`
}

// cniNetworkName is the CNI name of a Drover network.
func cniNetworkName(name string) string { return cniNamePrefix + name }

// validateNetwork checks a Network before any plugin sees it, so mistakes
// come back as ErrInvalid naming the field rather than as a plugin's error.
func validateNetwork(n Network) error {
	if n.Name == "" || !cniName.MatchString(n.Name) {
		return fmt.Errorf("network %q: name must match %s: %w", n.Name, cniName, api.ErrInvalid)
	}
	if n.Bridge == "" || len(n.Bridge) > 15 || strings.ContainsAny(n.Bridge, "/ \t\n:") {
		return fmt.Errorf("network %q: bridge name %q must be 1-15 characters without '/', ':' or spaces: %w", n.Name, n.Bridge, api.ErrInvalid)
	}
	ip, subnet, err := net.ParseCIDR(n.Subnet)
	if err != nil || ip.To4() == nil {
		return fmt.Errorf("network %q: subnet %q is not an IPv4 CIDR such as 10.213.4.0/24: %w", n.Name, n.Subnet, api.ErrInvalid)
	}
	if !ip.Equal(subnet.IP) {
		return fmt.Errorf("network %q: subnet %q has host bits set (did you mean %s?): %w", n.Name, n.Subnet, subnet, api.ErrInvalid)
	}
	if n.Gateway != "" {
		gw := net.ParseIP(n.Gateway)
		if gw == nil || !subnet.Contains(gw) {
			return fmt.Errorf("network %q: gateway %q is not an address in subnet %s: %w", n.Name, n.Gateway, n.Subnet, api.ErrInvalid)
		}
	}
	if err := validateSubnet6(n); err != nil {
		return err
	}
	if n.MTU < 0 || (n.MTU != 0 && n.MTU < 576) || n.MTU > 65535 {
		return fmt.Errorf("network %q: MTU %d must be 0 (from the host) or 576-65535: %w", n.Name, n.MTU, api.ErrInvalid)
	}
	return nil
}

// validateSubnet6 checks the IPv6 half of a dual-stack network. host-local
// needs room for the gateway and the tasks, so the prefix is at most /120.
func validateSubnet6(n Network) error {
	if n.Subnet6 == "" {
		if n.Gateway6 != "" {
			return fmt.Errorf("network %q: gateway6 %q given without an IPv6 subnet (subnet6): %w", n.Name, n.Gateway6, api.ErrInvalid)
		}
		return nil
	}
	ip, subnet, err := net.ParseCIDR(n.Subnet6)
	if err != nil || ip.To4() != nil {
		return fmt.Errorf("network %q: IPv6 subnet %q is not an IPv6 CIDR such as fd9d:6c6f:7665:1::/64: %w", n.Name, n.Subnet6, api.ErrInvalid)
	}
	if !ip.Equal(subnet.IP) {
		return fmt.Errorf("network %q: IPv6 subnet %q has host bits set (did you mean %s?): %w", n.Name, n.Subnet6, subnet, api.ErrInvalid)
	}
	if ones, _ := subnet.Mask.Size(); ones > 120 {
		return fmt.Errorf("network %q: IPv6 subnet %s is too small; use a prefix of at most /120 (/64 is usual): %w", n.Name, n.Subnet6, api.ErrInvalid)
	}
	if n.Gateway6 != "" {
		gw := net.ParseIP(n.Gateway6)
		if gw == nil || gw.To4() != nil || !subnet.Contains(gw) || gw.Equal(subnet.IP) {
			return fmt.Errorf("network %q: IPv6 gateway %q is not a host address in subnet %s: %w", n.Name, n.Gateway6, n.Subnet6, api.ErrInvalid)
		}
	}
	return nil
}

// gatewayIP is the gateway of n: Gateway, or the subnet's first address,
// which is what host-local picks when none is given.
func gatewayIP(n Network) net.IP {
	if gw := net.ParseIP(n.Gateway).To4(); gw != nil {
		return gw
	}
	_, subnet, err := net.ParseCIDR(n.Subnet)
	if err != nil || subnet.IP.To4() == nil {
		return nil
	}
	gw := make(net.IP, 4)
	copy(gw, subnet.IP.To4())
	gw[3]++
	return gw
}

// validateStaticIP checks an address asked for on network n (already valid).
func validateStaticIP(n Network, addr string) error {
	ip := net.ParseIP(addr).To4()
	if ip == nil {
		return fmt.Errorf("network %q: address %q is not an IPv4 address: %w", n.Name, addr, api.ErrInvalid)
	}
	_, subnet, _ := net.ParseCIDR(n.Subnet)
	if !subnet.Contains(ip) {
		return fmt.Errorf("network %q: address %s is outside the network's subnet %s on this host; pick one in it or drop ipv4_address: %w", n.Name, ip, n.Subnet, api.ErrInvalid)
	}
	bcast := make(net.IP, 4)
	for i := range bcast {
		bcast[i] = subnet.IP.To4()[i] | ^subnet.Mask[i]
	}
	switch {
	case ip.Equal(subnet.IP.To4()), ip.Equal(bcast):
		return fmt.Errorf("network %q: address %s is the network or broadcast address of %s: %w", n.Name, ip, n.Subnet, api.ErrInvalid)
	case ip.Equal(gatewayIP(n)):
		return fmt.Errorf("network %q: address %s is the network's gateway: %w", n.Name, ip, api.ErrInvalid)
	}
	return nil
}

// leaseHolder is the task that holds address ip on network n in host-local's
// store (a file per address holding the container id), or "".
func (m *Manager) leaseHolder(n Network, ip net.IP) string {
	data, err := os.ReadFile(filepath.Join(m.ipamDir(), cniNetworkName(n.Name), ip.String()))
	if err != nil {
		return ""
	}
	id, _, _ := strings.Cut(string(data), "\n")
	return strings.TrimSpace(id)
}

// buildConfList makes the network list for one network. primary decides
// whether the interface carries the default route: only eth0 does, or a
// container on two networks would have two default routes.
func (m *Manager) buildConfList(n Network, mtu int, primary bool) ([]byte, error) {
	ipam := &ipamConf{
		Type:    "host-local",
		Ranges:  [][]ipamRange{{{Subnet: n.Subnet, Gateway: n.Gateway}}},
		DataDir: m.ipamDir(),
	}
	// A second range set makes host-local give one address from each: a
	// dual-stack task. The bridge plugin puts both gateways on the bridge,
	// masquerades both families (ipMasq) and turns IPv6 forwarding on.
	if n.Subnet6 != "" {
		ipam.Ranges = append(ipam.Ranges, []ipamRange{{Subnet: n.Subnet6, Gateway: n.Gateway6}})
	}
	if primary && !n.Internal {
		// Routes without a gateway go via the gateway of their family.
		ipam.Routes = []ipamRoute{{Dst: "0.0.0.0/0"}}
		if n.Subnet6 != "" {
			ipam.Routes = append(ipam.Routes, ipamRoute{Dst: "::/0"})
		}
	} else if n.ClusterSubnet != "" && n.ClusterSubnet != n.Subnet {
		// Without the default route, only this host's slice would be on
		// the link: the other hosts' slices go via the gateway too, which
		// routes them over the network's VXLAN device.
		ipam.Routes = []ipamRoute{{Dst: n.ClusterSubnet}}
	}
	snat := true
	cl := confList{
		CNIVersion: cniVersion,
		Name:       cniNetworkName(n.Name),
		Internal:   n.Internal,
		Plugins: []pluginConf{
			{
				// The gateway address stays on the bridge of an internal
				// network too: the DNS server answers there.
				Type:         "bridge",
				Bridge:       n.Bridge,
				IsGateway:    true,
				IPMasq:       !n.Internal,
				HairpinMode:  true,
				MTU:          mtu,
				IPAM:         ipam,
				Capabilities: map[string]bool{"ips": true},
			},
			{
				Type:         "portmap",
				Capabilities: map[string]bool{"portMappings": true},
				SNAT:         &snat,
			},
		},
	}
	return json.MarshalIndent(cl, "", "  ")
}

// networkFromConfList reads a Network back from one of our lists.
func networkFromConfList(data []byte) (Network, error) {
	var cl confList
	if err := json.Unmarshal(data, &cl); err != nil {
		return Network{}, err
	}
	if !strings.HasPrefix(cl.Name, cniNamePrefix) {
		return Network{}, fmt.Errorf("network list %q is not Drover's", cl.Name)
	}
	n := Network{Name: strings.TrimPrefix(cl.Name, cniNamePrefix), Internal: cl.Internal}
	for _, p := range cl.Plugins {
		if p.Type != "bridge" {
			continue
		}
		n.Bridge, n.MTU = p.Bridge, p.MTU
		if p.IPAM != nil && len(p.IPAM.Ranges) > 0 && len(p.IPAM.Ranges[0]) > 0 {
			n.Subnet, n.Gateway = p.IPAM.Ranges[0][0].Subnet, p.IPAM.Ranges[0][0].Gateway
		}
		if p.IPAM != nil && len(p.IPAM.Ranges) > 1 && len(p.IPAM.Ranges[1]) > 0 {
			n.Subnet6, n.Gateway6 = p.IPAM.Ranges[1][0].Subnet, p.IPAM.Ranges[1][0].Gateway
		}
	}
	if n.Bridge == "" {
		return Network{}, fmt.Errorf("network list %q has no bridge plugin", cl.Name)
	}
	return n, nil
}

// writeConfList stores the primary form of a network's list under
// StateDir/cni, for people debugging and for Networks. Attachments do not
// depend on it: libcni caches the exact list each ADD used.
func (m *Manager) writeConfList(n Network, data []byte) error {
	path := m.confListPath(n.Name)
	if old, err := os.ReadFile(path); err == nil && string(old) == string(data) {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".conflist-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		_ = os.Remove(tmp.Name())
	}
	return werr
}

// parseConfList turns list bytes into libcni's form.
func parseConfList(data []byte) (*libcni.NetworkConfigList, error) {
	return libcni.NetworkConfFromBytes(data)
}

// loopbackConf is the single-plugin configuration that brings lo up.
func loopbackConf() (*libcni.PluginConfig, error) {
	return libcni.NetworkPluginConfFromBytes([]byte(`{"cniVersion":"` + cniVersion + `","name":"` + loopbackName + `","type":"loopback"}`))
}

// hostMTU is the MTU of the interface the host's IPv4 default route uses, so
// that containers do not send packets the uplink must fragment (eth0 is 1400
// on some hosts, e.g. inside VMs and tunnels).
func hostMTU() int {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return defaultMTU
	}
	for _, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		if r.LinkIndex <= 0 {
			continue
		}
		link, err := netlink.LinkByIndex(r.LinkIndex)
		if err != nil || link.Attrs().MTU <= 0 {
			continue
		}
		return link.Attrs().MTU
	}
	return defaultMTU
}
