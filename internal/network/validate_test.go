package network

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/drover-org/drover/api"
)

func TestValidateNetwork(t *testing.T) {
	ok := Network{Name: "hello_default", Bridge: "drv-abc", Subnet: "10.213.4.0/24", Gateway: "10.213.4.1"}
	tests := []struct {
		name   string
		change func(*Network)
		valid  bool
	}{
		{"ok", func(*Network) {}, true},
		{"no gateway", func(n *Network) { n.Gateway = "" }, true},
		{"mtu", func(n *Network) { n.MTU = 1400 }, true},
		{"empty name", func(n *Network) { n.Name = "" }, false},
		{"slash in name", func(n *Network) { n.Name = "a/b" }, false},
		{"long bridge", func(n *Network) { n.Bridge = "drv-0123456789ab" }, false},
		{"no bridge", func(n *Network) { n.Bridge = "" }, false},
		{"bad subnet", func(n *Network) { n.Subnet = "10.213.4.0/33" }, false},
		{"host bits", func(n *Network) { n.Subnet = "10.213.4.7/24" }, false},
		{"ipv6", func(n *Network) { n.Subnet = "fd00::/64"; n.Gateway = "fd00::1" }, false},
		{"gateway outside", func(n *Network) { n.Gateway = "10.213.5.1" }, false},
		{"tiny mtu", func(n *Network) { n.MTU = 100 }, false},
		{"dual stack", func(n *Network) { n.Subnet6 = "fd9d:6c6f:7665:1::/64"; n.Gateway6 = "fd9d:6c6f:7665:1::1" }, true},
		{"dual stack no gateway6", func(n *Network) { n.Subnet6 = "fd9d:6c6f:7665:1::/64" }, true},
		{"gateway6 alone", func(n *Network) { n.Gateway6 = "fd9d:6c6f:7665:1::1" }, false},
		{"subnet6 is v4", func(n *Network) { n.Subnet6 = "10.213.5.0/24" }, false},
		{"subnet6 host bits", func(n *Network) { n.Subnet6 = "fd9d:6c6f:7665:1::5/64" }, false},
		{"subnet6 too small", func(n *Network) { n.Subnet6 = "fd9d:6c6f:7665:1::/127" }, false},
		{"gateway6 outside", func(n *Network) { n.Subnet6 = "fd9d:6c6f:7665:1::/64"; n.Gateway6 = "fd9d:6c6f:7665:2::1" }, false},
		{"gateway6 is v4", func(n *Network) { n.Subnet6 = "fd9d:6c6f:7665:1::/64"; n.Gateway6 = "10.213.4.1" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := ok
			tt.change(&n)
			err := validateNetwork(n)
			if tt.valid && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !tt.valid && !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("err %v, want ErrInvalid", err)
			}
		})
	}
}

func TestValidatePorts(t *testing.T) {
	tests := []struct {
		name  string
		ports []PortMapping
		valid bool
	}{
		{"none", nil, true},
		{"one", []PortMapping{{HostPort: 80, ContainerPort: 8080}}, true},
		{"tcp and udp on one port", []PortMapping{{HostPort: 53, ContainerPort: 53, Protocol: "tcp"}, {HostPort: 53, ContainerPort: 53, Protocol: "udp"}}, true},
		{"two host IPs", []PortMapping{{HostIP: "127.0.0.1", HostPort: 80, ContainerPort: 1}, {HostIP: "192.0.2.2", HostPort: 80, ContainerPort: 2}}, true},
		{"twice", []PortMapping{{HostPort: 80, ContainerPort: 1}, {HostPort: 80, ContainerPort: 2, Protocol: "TCP"}}, false},
		{"any and one IP", []PortMapping{{HostPort: 80, ContainerPort: 1}, {HostIP: "127.0.0.1", HostPort: 80, ContainerPort: 2}}, false},
		{"zero host port", []PortMapping{{ContainerPort: 80}}, false},
		{"sctp", []PortMapping{{HostPort: 80, ContainerPort: 80, Protocol: "sctp"}}, false},
		{"bad host IP", []PortMapping{{HostIP: "localhost", HostPort: 80, ContainerPort: 80}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validatePorts(tt.ports)
			if tt.valid && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !tt.valid && !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("err %v, want ErrInvalid", err)
			}
		})
	}
}

// The port mappings a DEL gets come back from libcni's cache through JSON;
// they must be the ones the ADD had.
func TestCapabilityArgsRoundTrip(t *testing.T) {
	ports := []PortMapping{
		{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"},
		{HostIP: "127.0.0.1", HostPort: 5353, ContainerPort: 53, Protocol: "udp"},
	}
	data, err := json.Marshal(capabilityArgs(ports))
	if err != nil {
		t.Fatal(err)
	}
	var cached map[string]any
	if err := json.Unmarshal(data, &cached); err != nil {
		t.Fatal(err)
	}
	got := portsFromCapabilityArgs(cached)
	if len(got) != len(ports) {
		t.Fatalf("got %+v, want %+v", got, ports)
	}
	for i := range ports {
		if got[i] != ports[i] {
			t.Errorf("mapping %d: got %+v, want %+v", i, got[i], ports[i])
		}
	}
}

func TestConfListRoundTrip(t *testing.T) {
	m := &Manager{stateDir: "/state"}
	n := Network{Name: "hello_default", Bridge: "drv-abc", Subnet: "10.213.4.0/24", Gateway: "10.213.4.1", MTU: 1400}
	data, err := m.buildConfList(n, n.MTU, true)
	if err != nil {
		t.Fatal(err)
	}
	list, err := parseConfList(data)
	if err != nil {
		t.Fatalf("libcni rejects our list: %v\n%s", err, data)
	}
	if list.Name != "drover-hello_default" || list.CNIVersion != cniVersion || len(list.Plugins) != 2 {
		t.Errorf("list %s %s with %d plugins", list.Name, list.CNIVersion, len(list.Plugins))
	}
	if !list.Plugins[1].Network.Capabilities["portMappings"] {
		t.Error("portmap lacks the portMappings capability")
	}
	back, err := networkFromConfList(data)
	if err != nil {
		t.Fatal(err)
	}
	if back != n {
		t.Errorf("read back %+v, want %+v", back, n)
	}
}

func TestDualStackConfList(t *testing.T) {
	m := &Manager{stateDir: "/state"}
	n := Network{Name: "hello_default", Bridge: "drv-abc", Subnet: "10.213.4.0/24", Gateway: "10.213.4.1",
		Subnet6: "fd9d:6c6f:7665:1::/64", Gateway6: "fd9d:6c6f:7665:1::1", MTU: 1400}
	for _, primary := range []bool{true, false} {
		data, cl, got := buildChecked(t, m, n, n.MTU, primary)
		ipam := cl.Plugins[0].IPAM
		if len(ipam.Ranges) != 2 || ipam.Ranges[1][0].Subnet != n.Subnet6 || ipam.Ranges[1][0].Gateway != n.Gateway6 {
			t.Errorf("ranges %+v, want a second range set with %s", ipam.Ranges, n.Subnet6)
		}
		want := ""
		if primary {
			want = "0.0.0.0/0 ::/0"
		}
		if got != want {
			t.Errorf("primary=%v: routes %q, want %q", primary, got, want)
		}
		back, err := networkFromConfList(data)
		if err != nil {
			t.Fatal(err)
		}
		if back != n {
			t.Errorf("read back %+v, want %+v", back, n)
		}
	}
	// Internal: both ranges, no routes.
	n.Internal = true
	data, _ := m.buildConfList(n, n.MTU, true)
	var cl confList
	if err := json.Unmarshal(data, &cl); err != nil {
		t.Fatal(err)
	}
	if ipam := cl.Plugins[0].IPAM; len(ipam.Ranges) != 2 || len(ipam.Routes) != 0 {
		t.Errorf("internal dual-stack ipam %+v: want two ranges and no routes", ipam)
	}
	// IPv4 only: the list has no trace of IPv6.
	n = Network{Name: "v4", Bridge: "drv-v4", Subnet: "10.213.4.0/24"}
	data, _ = m.buildConfList(n, 1400, true)
	if strings.Contains(string(data), "::") || strings.Count(string(data), `"subnet"`) != 1 {
		t.Errorf("IPv4-only list mentions IPv6:\n%s", data)
	}
}

// A network spanning hosts that does not carry the default route gets a
// route to its whole cluster subnet, so a container reaches the tasks of
// the network's other slices (other hosts) through it.
func TestConfListRoutes(t *testing.T) {
	m := &Manager{stateDir: "/state"}
	local := Network{Name: "p_n2", Bridge: "drv-n2", Subnet: "10.213.4.0/24", Gateway: "10.213.4.1"}
	cluster := local
	cluster.ClusterSubnet = "10.213.0.0/20"
	internal := cluster
	internal.Internal = true
	whole := local
	whole.ClusterSubnet = local.Subnet
	tests := []struct {
		name    string
		n       Network
		primary bool
		want    string
	}{
		{"one host, first network", local, true, "0.0.0.0/0"},
		{"one host, other network", local, false, ""},
		{"cluster, first network", cluster, true, "0.0.0.0/0"},
		{"cluster, other network", cluster, false, "10.213.0.0/20"},
		{"cluster, internal first network", internal, true, "10.213.0.0/20"},
		{"cluster subnet is the slice", whole, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, got := buildChecked(t, m, tt.n, 1400, tt.primary); got != tt.want {
				t.Errorf("routes %q, want %q", got, tt.want)
			}
		})
	}
}

// buildChecked builds n's list, checks that libcni takes it and returns it
// raw and decoded with its routes' destinations, space separated.
func buildChecked(t *testing.T, m *Manager, n Network, mtu int, primary bool) ([]byte, confList, string) {
	t.Helper()
	data, err := m.buildConfList(n, mtu, primary)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseConfList(data); err != nil {
		t.Fatalf("libcni rejects our list: %v\n%s", err, data)
	}
	var cl confList
	if err := json.Unmarshal(data, &cl); err != nil {
		t.Fatal(err)
	}
	var dsts []string
	for _, r := range cl.Plugins[0].IPAM.Routes {
		dsts = append(dsts, r.Dst)
	}
	return data, cl, strings.Join(dsts, " ")
}

func TestValidateRequest(t *testing.T) {
	n := Network{Name: "app_front", Bridge: "drv-abc", Subnet: "10.213.4.0/24", Gateway: "10.213.4.1"}
	in := Network{Name: "app_back", Bridge: "drv-def", Subnet: "10.213.5.0/28", Internal: true}
	port := []PortMapping{{HostPort: 8080, ContainerPort: 80}}
	tests := []struct {
		name  string
		req   Request
		valid bool
	}{
		{"no networks (network_mode none)", Request{ID: "t1"}, true},
		{"no networks with ports", Request{ID: "t1", Ports: port}, false},
		{"ports on internal only", Request{ID: "t1", Networks: []Network{in}, Ports: port}, false},
		{"ports with internal first", Request{ID: "t1", Networks: []Network{in, n}, Ports: port}, true},
		{"static", Request{ID: "t1", Networks: []Network{n}, IPs: map[string]string{"app_front": "10.213.4.9"}}, true},
		{"static, no gateway given", Request{ID: "t1", Networks: []Network{in}, IPs: map[string]string{"app_back": "10.213.5.14"}}, true},
		{"static is default gateway", Request{ID: "t1", Networks: []Network{in}, IPs: map[string]string{"app_back": "10.213.5.1"}}, false},
		{"static is broadcast", Request{ID: "t1", Networks: []Network{in}, IPs: map[string]string{"app_back": "10.213.5.15"}}, false},
		{"static is network address", Request{ID: "t1", Networks: []Network{n}, IPs: map[string]string{"app_front": "10.213.4.0"}}, false},
		{"static outside subnet", Request{ID: "t1", Networks: []Network{in}, IPs: map[string]string{"app_back": "10.213.5.16"}}, false},
		{"static is gateway", Request{ID: "t1", Networks: []Network{n}, IPs: map[string]string{"app_front": "10.213.4.1"}}, false},
		{"static IPv6", Request{ID: "t1", Networks: []Network{n}, IPs: map[string]string{"app_front": "fd00::5"}}, false},
		{"static on another network", Request{ID: "t1", Networks: []Network{n}, IPs: map[string]string{"app_back": "10.213.5.9"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validateRequest(tt.req)
			if tt.valid && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !tt.valid && !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("err %v, want ErrInvalid", err)
			}
		})
	}
}

func TestGatewayIndex(t *testing.T) {
	a, b := Network{Name: "a"}, Network{Name: "b", Internal: true}
	for _, tt := range []struct {
		nets []Network
		want int
	}{
		{nil, -1}, {[]Network{a}, 0}, {[]Network{b}, -1}, {[]Network{b, a}, 1}, {[]Network{a, b}, 0},
	} {
		if got := gatewayIndex(tt.nets); got != tt.want {
			t.Errorf("gatewayIndex(%v) = %d, want %d", tt.nets, got, tt.want)
		}
	}
}

// An internal network has no masquerade and no default route even as the
// primary network, and reads back as internal.
func TestInternalConfList(t *testing.T) {
	m := &Manager{stateDir: "/state"}
	n := Network{Name: "app_back", Bridge: "drv-def", Subnet: "10.213.5.0/24", Gateway: "10.213.5.1", MTU: 1400, Internal: true}
	data, err := m.buildConfList(n, n.MTU, true)
	if err != nil {
		t.Fatal(err)
	}
	var cl confList
	if err := json.Unmarshal(data, &cl); err != nil {
		t.Fatal(err)
	}
	br := cl.Plugins[0]
	if br.IPMasq || len(br.IPAM.Routes) != 0 || !br.IsGateway || !br.Capabilities["ips"] {
		t.Errorf("bridge plugin of an internal network: %+v, routes %v", br, br.IPAM.Routes)
	}
	back, err := networkFromConfList(data)
	if err != nil {
		t.Fatal(err)
	}
	if back != n {
		t.Errorf("read back %+v, want %+v", back, n)
	}
}

func TestNamesInterface(t *testing.T) {
	rule := strings.Fields("-A DROVER-ISOLATION-1 ! -i drv-ab -o drv-ab -j DROP")
	if !namesInterface(rule, "drv-ab") || namesInterface(rule, "drv-a") || namesInterface(rule, "DROP") {
		t.Error("namesInterface matches the wrong bridges")
	}
}
