package server

import (
	"net"
	"sort"
	"strconv"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/store"
)

// ingressPorts lists every port published through the routing mesh with
// the tasks ready to serve it: running, not being retired, and healthy or
// without a health check. Every node gets the same list; a task that is
// being stopped leaves it at once, so no node sends it new connections
// while its open ones drain.
func ingressPorts(snap *store.Snapshot) []api.IngressPort {
	mesh := map[string]string{}
	for _, n := range snap.Nodes {
		if n.Addr != "" && n.MeshPort != 0 {
			mesh[n.ID] = net.JoinHostPort(n.Addr, strconv.Itoa(n.MeshPort))
		}
	}
	type svcKey struct{ stack, service string }
	backends := map[svcKey][]api.Task{}
	for _, t := range snap.Tasks {
		if t.DesiredState != api.DesiredRunning || t.Status.State != api.StateRunning || t.NodeID == "" {
			continue
		}
		if h := t.Status.Health; h == api.HealthStarting || h == api.HealthUnhealthy {
			continue
		}
		k := svcKey{t.Stack, t.Service}
		backends[k] = append(backends[k], t)
	}
	var out []api.IngressPort
	for _, sv := range snap.Services {
		if sv.OneOff {
			continue
		}
		for _, p := range sv.Spec.Ports {
			if p.Published == 0 || p.HostMode() {
				continue
			}
			ip := api.IngressPort{Stack: sv.Stack, Service: sv.Spec.Name, Protocol: p.Protocol, HostIP: p.HostIP, Port: p.Published, Backends: []api.IngressBackend{}}
			for _, t := range backends[svcKey{sv.Stack, sv.Spec.Name}] {
				addr := taskAddress(t)
				if addr == "" {
					continue
				}
				target := int(p.Target)
				for _, tp := range t.Spec.Ports { // the task's own spec (it may be an older version)
					if tp.Published == p.Published && tp.Protocol == p.Protocol {
						target = int(tp.Target)
					}
				}
				ip.Backends = append(ip.Backends, api.IngressBackend{Task: t.ID, Node: t.NodeID, Addr: net.JoinHostPort(addr, strconv.Itoa(target)), Via: mesh[t.NodeID]})
			}
			sort.Slice(ip.Backends, func(i, j int) bool { return ip.Backends[i].Task < ip.Backends[j].Task })
			out = append(out, ip)
		}
	}
	return out
}

// taskAddress is where a task's published ports are: its address on its
// first network that is not internal (the one carrying its default route
// and ports), or the node's loopback for a task on the host's network.
func taskAddress(t api.Task) string {
	if t.Spec.NetworkMode == "host" {
		return "127.0.0.1"
	}
	for _, n := range t.Networks {
		if !n.Network.Internal {
			return t.Status.Addresses[n.Network.FullName]
		}
	}
	return ""
}
