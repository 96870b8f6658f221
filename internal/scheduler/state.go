package scheduler

import (
	"math"
	"strings"

	"github.com/drover-org/drover/api"
)

// NodeState is what the tasks running or planned on a node hold of it.
type NodeState struct {
	// NanoCPUs and MemoryBytes are the sums of the tasks' reservations.
	NanoCPUs    int64
	MemoryBytes int64
	// Tasks counts the node's tasks.
	Tasks int
	// ServiceTasks counts the node's tasks of the service being placed;
	// the scheduler sets it before each Check.
	ServiceTasks int
	// ports are the host ports in use: port key -> who holds them.
	ports map[portKey][]portUse
}

// portUse is a host port held on a host IP by a service's task.
type portUse struct {
	ip      string
	service string
}

type portKey struct {
	proto string
	port  uint16
}

// PortInUse reports whether service publishing p would collide with a host
// port already published on the node by another service: same port and
// protocol, and the same host IP or either side on all addresses. Replicas
// of one service share their host port on a node (the first one attached
// takes the traffic, the next takes over when it goes), as the design says.
func (s *NodeState) PortInUse(p api.PortSpec, service string) bool {
	if p.Published == 0 {
		return false
	}
	for _, u := range s.ports[portKey{protocol(p.Protocol), p.Published}] {
		if u.service == service {
			continue
		}
		if u.ip == p.HostIP || anyAddr(u.ip) || anyAddr(p.HostIP) {
			return true
		}
	}
	return false
}

func (s *NodeState) add(spec *api.ServiceSpec, service string) {
	s.NanoCPUs += nanoCPUs(spec.Reservations.CPUs)
	s.MemoryBytes += spec.Reservations.MemoryBytes
	s.Tasks++
	for _, p := range spec.Ports {
		if p.Published == 0 || !p.HostMode() {
			continue // ingress ports are every node's, through the mesh
		}
		if s.ports == nil {
			s.ports = map[portKey][]portUse{}
		}
		k := portKey{protocol(p.Protocol), p.Published}
		s.ports[k] = append(s.ports[k], portUse{p.HostIP, service})
	}
}

func protocol(p string) string {
	if p == "" {
		return "tcp"
	}
	return strings.ToLower(p)
}

func anyAddr(ip string) bool { return ip == "" || ip == "0.0.0.0" || ip == "::" }

// nanoCPUs converts fractional CPUs to integer billionths, so that sums
// never drift.
func nanoCPUs(cpus float64) int64 { return int64(math.Round(cpus * 1e9)) }

// serviceKey names a task's service across stacks.
func serviceKey(t *api.Task) string { return t.Stack + "/" + t.Service }
