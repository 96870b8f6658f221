// Package network connects a task to its Compose networks on one host: it
// gives the task a network namespace, plugs it into one Linux bridge per
// network and publishes its ports, all through CNI (libcni and the standard
// bridge, host-local, portmap and loopback plugins).
//
// A Manager owns everything under its StateDir:
//
//	StateDir/cni/<name>.conflist   the CNI network list of each network
//	StateDir/ipam/                 host-local's lease files (one dir per network)
//	StateDir/cache/                libcni's cache of each ADD (result, config, port mappings)
//	StateDir/netns/<task id>       the task's network namespace, bind-mounted
//
// Attach creates the namespace, brings lo up and runs a CNI ADD per network
// (eth0 for the first, eth1... for the rest); a Request without networks
// (network_mode: none) gets just lo. The first network that is not Internal
// carries the default route, and ports are published on it by portmap, on
// 127.0.0.1 as well as on the host's addresses. Request.IPs pins addresses
// (ipv4_address) through host-local's "ips" capability.
// Detach runs the matching DELs and removes the namespace. Because the
// namespace is a bind mount and libcni caches what each ADD was given, a task
// outlives the agent process: a new Manager on the same StateDir can Detach
// it, and a DEL gets exactly the port mappings of its ADD, so no DNAT rule is
// left behind.
//
// A network with a Subnet6 (Compose enable_ipv6) is dual-stack: host-local
// gets a second range, so each task has an IPv4 and an IPv6 address
// (Result.IPs and Result.IPs6), the bridge carries both gateways, ipMasq
// masquerades both families, and the network that carries the IPv4 default
// route carries the IPv6 one too when it is dual-stack (none on an
// internal network). portmap publishes ports on the host's IPv6 addresses
// as well once the task has one, but not on [::1]: the kernel does not
// route ::1 out of the host (IPv6 has no route_localnet). IPv6 addresses
// are always dynamic; Request.IPs is IPv4 only. The first dual-stack ADD
// makes the bridge plugin set net.ipv6.conf.all.forwarding=1, host-wide and
// for good: with forwarding on, interfaces with accept_ra=1 stop accepting
// router advertisements, so a host that gets its IPv6 route or address by
// SLAAC loses it when they expire unless accept_ra is 2 there. We change no
// other sysctl.
//
// Networks are kept apart by iptables rules in chains of our own
// (DROVER-ISOLATION-1/-2, see isolation.go): nothing new goes from one
// network's bridge to another's, except to published ports; an internal
// network's bridge exchanges nothing with any other interface. The same
// rules are kept with ip6tables, for every network where the host has a
// working ip6tables (a dual-stack network requires it), since IPv6
// forwarding is host-wide too. The rules come with a network's first ADD
// and go with RemoveNetwork.
//
// Invariants:
//   - Attach is all or nothing: on any failure it undoes what it did, so no
//     namespace, address lease or iptables rule of the task remains.
//   - Detach and RemoveNetwork are idempotent; what is already gone is fine.
//   - A host port (protocol, address) is published by at most one task, and
//     never over a port a host process already listens on.
//   - A bridge carries tasks only once its isolation rules are in place;
//     rules of a bridge and our chains do not outlive RemoveNetwork of the
//     last network.
//
// Not here yet: traffic across hosts (VXLAN; isolation there is the
// overlay's to keep), static IPv6 addresses (ipv6_address) and IPv6 host
// IPs for published ports. The host itself (INPUT) is not filtered: a
// task on an internal network has no route to the host's other addresses,
// but one with NET_ADMIN could add one. The DNS server on the gateways is
// package dns.
package network
