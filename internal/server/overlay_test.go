package server

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/orchestrator"
	"github.com/drover-org/drover/internal/scheduler"
	"github.com/drover-org/drover/internal/store"
)

func TestLeaseSubnetSizes(t *testing.T) {
	sn, gw, err := leaseSubnet("10.192.0.0/10", 20, map[string]string{"10.192.0.0/20": "a/x", "10.192.0.0/24": "a/x@n1"})
	if err != nil || sn != "10.192.16.0/20" || gw != "10.192.16.1" {
		t.Fatalf("got %s %s %v", sn, gw, err)
	}
	if _, _, err := leaseSubnet("10.0.0.0/24", 20, nil); err == nil {
		t.Fatal("pool smaller than a network accepted")
	}
}

func TestSliceBits(t *testing.T) {
	for bits, want := range map[int]int{16: 24, 20: 24, 22: 24, 23: 25, 24: 26, 28: 30, 30: 30} {
		if got := sliceBits(bits); got != want {
			t.Errorf("sliceBits(%d) = %d, want %d", bits, got, want)
		}
	}
}

func TestPickSlice(t *testing.T) {
	p := netip.MustParsePrefix("10.192.16.0/20")
	leases := map[string]string{"10.192.16.0/20": "s/n", "10.192.16.0/24": "s/n@a"}
	got, err := pickSlice(p, 24, netip.Addr{}, leases, "s_n")
	if err != nil || got != "10.192.17.0/24" {
		t.Fatalf("first free slice: %s %v", got, err)
	}
	got, err = pickSlice(p, 24, netip.MustParseAddr("10.192.21.7"), leases, "s_n")
	if err != nil || got != "10.192.21.0/24" {
		t.Fatalf("slice of a static address: %s %v", got, err)
	}
	_, err = pickSlice(p, 24, netip.MustParseAddr("10.192.16.9"), leases, "s_n")
	if err == nil || !strings.Contains(err.Error(), "10.192.16.0/24") || !strings.Contains(err.Error(), "@a") {
		t.Fatalf("static address in another node's slice: %v", err)
	}
	full := map[string]string{}
	for i := 0; i < 16; i++ {
		full[netip.PrefixFrom(uint4IP(ip4Uint(p.Addr())+uint32(i)<<8), 24).String()] = "s/n@x"
	}
	if _, err := pickSlice(p, 24, netip.Addr{}, full, "s_n"); err == nil || !strings.Contains(err.Error(), "no slice left") {
		t.Fatalf("exhausted network: %v", err)
	}
}

func TestSliceNetwork(t *testing.T) {
	n := api.Network{FullName: "s_n", Subnet: "10.192.16.0/20", Gateway: "10.192.16.1", Subnet6: "fd9d:6c6f:7665:3::/64", Gateway6: "fd9d:6c6f:7665:3::1"}
	got := sliceNetwork(n, "10.192.18.0/24")
	if got.ClusterSubnet != "10.192.16.0/20" || got.Subnet != "10.192.18.0/24" || got.Gateway != "10.192.18.1" {
		t.Fatalf("IPv4: %+v", got)
	}
	if got.Subnet6 != "fd9d:6c6f:7665:3:2::/80" || got.Gateway6 != "fd9d:6c6f:7665:3:2::1" {
		t.Fatalf("IPv6: %s %s", got.Subnet6, got.Gateway6)
	}
}

// Placing tasks leases their nodes' slices in the same write, and the
// agents' assignments carry their slices and their peers.
func TestPlacementLeasesSlicesAndAssignmentsCarryThem(t *testing.T) {
	n := api.Network{Stack: "s", Name: "n", FullName: "s_n", Subnet: "10.192.16.0/20", Gateway: "10.192.16.1", VNI: 77}
	task := func(id, node string) api.Task {
		return api.Task{ID: id, Stack: "s", Service: "web", NodeID: node, DesiredState: api.DesiredRunning,
			Networks: []api.Attachment{{Network: n}}}
	}
	snap := &store.Snapshot{
		Stacks:       map[string]api.Stack{"s": {Name: "s", Networks: []api.Network{n}}},
		SubnetLeases: map[string]string{"10.192.16.0/20": "s/n"},
		Nodes: []api.Node{{NodeRegistration: api.NodeRegistration{ID: "a", Addr: "192.0.2.1"}},
			{NodeRegistration: api.NodeRegistration{ID: "b", Addr: "192.0.2.2"}}},
	}
	act := orchestrator.Actions{Create: []api.Task{task("t1", "a")}, Assign: []scheduler.Placement{{TaskID: "t2", NodeID: "b"}}}
	byID := map[string]api.Task{"t2": task("t2", "")}
	txn := &store.Txn{}
	leaseForPlacements(snap, &act, byID, txn)
	if len(act.Assign) != 1 || len(act.Unplaced) != 0 || act.Create[0].NodeID != "a" {
		t.Fatalf("placements changed: %+v", act)
	}
	if txn.Len() != 2 { // two leases, each put only if absent
		t.Fatalf("txn has %d operations, want 2", txn.Len())
	}
	// What the store holds after the write.
	snap.SubnetLeases["10.192.16.0/24"] = "s/n@a"
	snap.SubnetLeases["10.192.17.0/24"] = "s/n@b"
	snap.Tasks = []api.Task{task("t1", "a"), task("t2", "b")}
	asg := AssignmentsFor(snap, "b")
	if len(asg.Tasks) != 1 || asg.Tasks[0].Networks[0].Network.Subnet != "10.192.17.0/24" || asg.Tasks[0].Networks[0].Network.ClusterSubnet != "10.192.16.0/20" {
		t.Fatalf("b's task: %+v", asg.Tasks)
	}
	if snap.Tasks[1].Networks[0].Network.Subnet != "10.192.16.0/20" {
		t.Fatal("AssignmentsFor changed the snapshot's task")
	}
	want := api.Overlay{Network: "s_n", VNI: 77, Subnet: "10.192.16.0/20", LocalAddr: "192.0.2.2", LocalSubnet: "10.192.17.0/24",
		Peers: []api.OverlayPeer{{Node: "a", Addr: "192.0.2.1", Subnet: "10.192.16.0/24"}}}
	if len(asg.Overlays) != 1 || asg.Overlays[0].LocalSubnet != want.LocalSubnet || len(asg.Overlays[0].Peers) != 1 || asg.Overlays[0].Peers[0] != want.Peers[0] || asg.Overlays[0].VNI != 77 {
		t.Fatalf("overlays: %+v", asg.Overlays)
	}

	// A network with no slice left: the placement becomes an unplaced task
	// that says why.
	full := map[string]string{"10.192.16.0/20": "s/n"}
	for i := 0; i < 16; i++ {
		full[netip.PrefixFrom(uint4IP(ip4Uint(netip.MustParseAddr("10.192.16.0"))+uint32(i)<<8), 24).String()] = "s/n@x"
	}
	snap.SubnetLeases = full
	act = orchestrator.Actions{Assign: []scheduler.Placement{{TaskID: "t2", NodeID: "b"}}}
	leaseForPlacements(snap, &act, byID, &store.Txn{})
	if len(act.Assign) != 0 || len(act.Unplaced) != 1 || !strings.Contains(act.Unplaced[0].Reason, "no slice left") {
		t.Fatalf("exhausted network: %+v", act)
	}
}

func TestNewVNIAvoidsCollisions(t *testing.T) {
	snap := &store.Snapshot{Stacks: map[string]api.Stack{"s": {Networks: []api.Network{{FullName: "x", VNI: hashVNI("s_n", 0)}}}}}
	if v := newVNI(snap, "s_n"); v == hashVNI("s_n", 0) || v < 1 || v >= 1<<24 {
		t.Fatalf("VNI %d", v)
	}
}
