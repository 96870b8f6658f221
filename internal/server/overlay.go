package server

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"sort"
	"strings"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/orchestrator"
	"github.com/drover-org/drover/internal/scheduler"
	"github.com/drover-org/drover/internal/store"
)

// A cluster's network spans hosts (flannel's shape): the network's subnet
// is split into slices, one per node that runs its tasks; each node's
// bridge takes its slice, and VXLAN routes the other slices to their
// nodes. The slices are leases under the same keys as the networks'
// subnets, owned "<stack>/<network>@<node>", so removing a stack releases
// them with the network's own lease.

// sliceBits is the prefix length of a node's slice of a network of prefix
// length bits: a /24 (253 tasks) when the network leaves room for 4
// nodes or more, else a quarter of the network.
func sliceBits(bits int) int { return min(max(24, bits+2), 30) }

// sliceOwner is the lease value of node's slice of network stack/name.
func sliceOwner(stack, name, node string) string { return stack + "/" + name + "@" + node }

// nodeSlices indexes the slice leases: network full name -> node -> slice.
func nodeSlices(leases map[string]string) map[string]map[string]string {
	out := map[string]map[string]string{}
	for subnet, owner := range leases {
		netRef, node, ok := strings.Cut(owner, "@")
		if !ok {
			continue
		}
		stack, name, _ := strings.Cut(netRef, "/")
		full := fullNetworkName(stack, name)
		if out[full] == nil {
			out[full] = map[string]string{}
		}
		out[full][node] = subnet
	}
	return out
}

// networkOwner finds the stack and name of the network a task attachment
// refers to (an external network belongs to another stack).
func networkOwner(snap *store.Snapshot, n api.Network) (stack, name string) {
	if !n.External {
		return n.Stack, n.Name
	}
	for _, st := range snap.Stacks {
		for _, on := range st.Networks {
			if on.FullName == n.FullName && !on.External {
				return on.Stack, on.Name
			}
		}
	}
	return n.Stack, n.Name
}

// leaseSlices gives node a slice of every network of t that it lacks,
// recording new leases in leases (and txn). A static address (Compose
// ipv4_address) picks the slice that holds it. It fails, saying why,
// when a network has no slice left.
func leaseSlices(snap *store.Snapshot, leases map[string]string, slices map[string]map[string]string, t api.Task, node string, txn *store.Txn) error {
	for _, a := range t.Networks {
		n := a.Network
		if slices[n.FullName][node] != "" {
			continue
		}
		p, err := netip.ParsePrefix(n.Subnet)
		if err != nil || !p.Addr().Is4() {
			return fmt.Errorf("network %s has no IPv4 subnet", n.FullName)
		}
		bits := sliceBits(p.Bits())
		var want netip.Addr
		for _, sn := range t.Spec.Networks {
			if sn.Name == a.Network.Name && sn.IPv4Address != "" {
				want, _ = netip.ParseAddr(sn.IPv4Address)
			}
		}
		slice, err := pickSlice(p, bits, want, leases, n.FullName)
		if err != nil {
			return err
		}
		stack, name := networkOwner(snap, n)
		owner := sliceOwner(stack, name, node)
		leases[slice] = owner
		if slices[n.FullName] == nil {
			slices[n.FullName] = map[string]string{}
		}
		slices[n.FullName][node] = slice
		key := store.SubnetLeaseKey(slice)
		txn.Unchanged(key, 0)
		txn.PutRaw(key, owner)
	}
	return nil
}

// pickSlice finds a free slice of p: the one holding want when it is set,
// else the first. Only slice leases count: the network's own lease covers
// all of p.
func pickSlice(p netip.Prefix, bits int, want netip.Addr, leases map[string]string, full string) (string, error) {
	p = p.Masked()
	sliceLeases := map[string]string{}
	for sn, owner := range leases {
		if strings.Contains(owner, "@") {
			sliceLeases[sn] = owner
		}
	}
	count := 1 << (bits - p.Bits())
	base := ip4Uint(p.Addr())
	if want.IsValid() && p.Contains(want) {
		cand, _ := want.Prefix(bits)
		if other, taken := overlapping(cand, sliceLeases); taken {
			return "", fmt.Errorf("network %s: ipv4_address %s lies in %s, which another node holds (%s); a task with a fixed address runs only where its slice is", full, want, cand, sliceLeases[other])
		}
		return cand.String(), nil
	}
	for i := 0; i < count; i++ {
		cand := netip.PrefixFrom(uint4IP(base+uint32(i)<<(32-bits)), bits)
		if _, taken := overlapping(cand, sliceLeases); !taken {
			return cand.String(), nil
		}
	}
	return "", fmt.Errorf("network %s (%s) has no slice left for another node: all %d slices of /%d are leased; give the network a larger subnet or the server a larger --network-size", full, p, count, bits)
}

// leaseForPlacements gives the nodes that tasks are being placed on (new
// tasks and assignments) their slices of the tasks' networks. Placements
// whose slices cannot be leased are turned into unplaced tasks.
func leaseForPlacements(snap *store.Snapshot, act *orchestrator.Actions, byID map[string]api.Task, txn *store.Txn) {
	leases := map[string]string{}
	for k, v := range snap.SubnetLeases {
		leases[k] = v
	}
	slices := nodeSlices(leases)
	for i := range act.Create {
		t := &act.Create[i]
		if t.NodeID == "" {
			continue
		}
		if err := leaseSlices(snap, leases, slices, *t, t.NodeID, txn); err != nil {
			t.NodeID, t.Unplaced = "", err.Error()
		}
	}
	kept := act.Assign[:0]
	for _, p := range act.Assign {
		if err := leaseSlices(snap, leases, slices, byID[p.TaskID], p.NodeID, txn); err != nil {
			act.Unplaced = append(act.Unplaced, scheduler.Unplaced{TaskID: p.TaskID, Reason: err.Error()})
			continue
		}
		kept = append(kept, p)
	}
	act.Assign = kept
}

// releaseNodeSlices deletes the slices a removed node held.
func releaseNodeSlices(snap *store.Snapshot, node string, txn *store.Txn) {
	for subnet, owner := range snap.SubnetLeases {
		if strings.HasSuffix(owner, "@"+node) {
			txn.Delete(store.SubnetLeaseKey(subnet))
		}
	}
}

// sliceNetwork is n as node sees it: its slice as Subnet and Gateway, the
// whole network as ClusterSubnet. A dual-stack network's /64 gets the
// slice's index in its next 16 bits: the node's /80.
func sliceNetwork(n api.Network, slice string) api.Network {
	sp, err := netip.ParsePrefix(slice)
	np, err2 := netip.ParsePrefix(n.Subnet)
	if err != nil || err2 != nil {
		return n
	}
	n.ClusterSubnet = n.Subnet
	n.Subnet, n.Gateway = sp.String(), sp.Addr().Next().String()
	if n.Subnet6 != "" {
		if p6, err := netip.ParsePrefix(n.Subnet6); err == nil && p6.Bits() == 64 {
			idx := (ip4Uint(sp.Addr()) - ip4Uint(np.Masked().Addr())) >> (32 - sp.Bits())
			b := p6.Masked().Addr().As16()
			b[8], b[9] = byte(idx>>8), byte(idx)
			s6 := netip.PrefixFrom(netip.AddrFrom16(b), 80)
			n.Subnet6, n.Gateway6 = s6.String(), s6.Addr().Next().String()
		}
	}
	return n
}

// overlaysFor is what node needs to connect its networks (those of tasks
// it is to run) across hosts; tasks' attachments are rewritten to the
// node's slices in place.
func overlaysFor(snap *store.Snapshot, node string, tasks []api.Task) []api.Overlay {
	slices := nodeSlices(snap.SubnetLeases)
	if len(slices) == 0 {
		return nil
	}
	addrs := map[string]string{}
	for _, n := range snap.Nodes {
		addrs[n.ID] = n.Addr
	}
	nets := map[string]api.Network{}
	for i := range tasks {
		for j := range tasks[i].Networks {
			n := tasks[i].Networks[j].Network
			slice := slices[n.FullName][node]
			if slice == "" {
				continue
			}
			tasks[i].Networks[j].Network = sliceNetwork(n, slice)
			if tasks[i].DesiredState == api.DesiredRunning {
				nets[n.FullName] = n
			}
		}
	}
	var out []api.Overlay
	for full, n := range nets {
		local := addrs[node]
		if local == "" {
			continue
		}
		o := api.Overlay{Network: full, VNI: vniOf(n), Subnet: n.Subnet, LocalAddr: local, LocalSubnet: slices[full][node], Peers: []api.OverlayPeer{}}
		if n.Subnet6 != "" {
			o.Subnet6, o.LocalSubnet6 = n.Subnet6, sliceNetwork(n, o.LocalSubnet).Subnet6
		}
		for other, slice := range slices[full] {
			if other == node || addrs[other] == "" {
				continue
			}
			peer := api.OverlayPeer{Node: other, Addr: addrs[other], Subnet: slice}
			if n.Subnet6 != "" {
				peer.Subnet6 = sliceNetwork(n, slice).Subnet6
			}
			o.Peers = append(o.Peers, peer)
		}
		sort.Slice(o.Peers, func(i, j int) bool { return o.Peers[i].Subnet < o.Peers[j].Subnet })
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Network < out[j].Network })
	return out
}

// vniOf is the network's VXLAN id: the one leased at its creation, or one
// derived from its name for networks made before.
func vniOf(n api.Network) int {
	if n.VNI != 0 {
		return n.VNI
	}
	return hashVNI(n.FullName, 0)
}

// hashVNI derives a VXLAN id (1 to 2^24-1) from a name and an attempt
// number, so that a collision can move on.
func hashVNI(name string, attempt int) int {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s/%d", name, attempt)
	return int(h.Sum32()%(1<<24-2)) + 1
}

// newVNI picks a VXLAN id for a new network that no other network of the
// cluster has.
func newVNI(snap *store.Snapshot, full string) int {
	used := map[int]bool{}
	for _, st := range snap.Stacks {
		for _, n := range st.Networks {
			if !n.External {
				used[vniOf(n)] = true
			}
		}
	}
	for i := 0; ; i++ {
		if v := hashVNI(full, i); !used[v] {
			return v
		}
	}
}
