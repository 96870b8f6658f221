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
// (eth0 for the first, eth1... for the rest); ports are published on the
// first network by portmap, on 127.0.0.1 as well as on the host's addresses.
// Detach runs the matching DELs and removes the namespace. Because the
// namespace is a bind mount and libcni caches what each ADD was given, a task
// outlives the agent process: a new Manager on the same StateDir can Detach
// it, and a DEL gets exactly the port mappings of its ADD, so no DNAT rule is
// left behind.
//
// Invariants:
//   - Attach is all or nothing: on any failure it undoes what it did, so no
//     namespace, address lease or iptables rule of the task remains.
//   - Detach and RemoveNetwork are idempotent; what is already gone is fine.
//   - A host port (protocol, address) is published by at most one task, and
//     never over a port a host process already listens on.
//
// Not here yet: keeping networks apart (with forwarding on, the host routes
// between bridges, so a task can reach another network's subnet through its
// gateway) and traffic across hosts (VXLAN). The DNS server on the gateways
// is package dns.
package network
