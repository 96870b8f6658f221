package api

import "time"

// Node states.
const (
	NodeReady = "ready"
	NodeDown  = "down"
)

// NodeRegistration is what an agent says of itself when it (re)starts.
type NodeRegistration struct {
	ID       string `json:"id"`
	Hostname string `json:"hostname"`
	// AgentAddress is where the agent serves logs and images to the
	// server, as unix:///path or tcp://host:port.
	AgentAddress string `json:"agentAddress"`
	CPUs         int    `json:"cpus"`
	MemoryBytes  int64  `json:"memoryBytes"`
	Version      string `json:"version"`
	// Manager is true for the agent that runs inside a server.
	Manager bool `json:"manager,omitempty"`
	// Addr is the node's address on the hosts' network (no port): where
	// other nodes send its overlay traffic. "" for a node outside a
	// cluster.
	Addr string `json:"addr,omitempty"`
	// MeshPort is where the node's routing mesh takes connections for its
	// tasks from other nodes (on Addr); 0 for a node outside a cluster.
	MeshPort int `json:"meshPort,omitempty"`
}

// NodeUpdate changes a node's labels and availability (`drover node update`).
type NodeUpdate struct {
	LabelAdd     map[string]string `json:"labelAdd,omitempty"`
	LabelRm      []string          `json:"labelRm,omitempty"`
	Availability string            `json:"availability,omitempty"`
}

// Node availability, set by operators (`drover node update`).
const (
	AvailabilityActive = "active" // takes new tasks
	AvailabilityPause  = "pause"  // keeps its tasks, takes no new ones
	AvailabilityDrain  = "drain"  // its tasks move elsewhere
)

// Node is a host that runs tasks.
type Node struct {
	NodeRegistration
	// Role is "manager" for a node that runs a server, else "worker".
	Role          string            `json:"role,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	Availability  string            `json:"availability,omitempty"` // "" means active
	State         string            `json:"state"`
	RegisteredAt  time.Time         `json:"registeredAt"`
	LastHeartbeat time.Time         `json:"lastHeartbeat,omitzero"`
}

// Assignments is what an agent is asked to run, with what it needs to name
// things on its networks.
type Assignments struct {
	// Revision is the store revision the answer reflects; pass it back to
	// wait for a change.
	Revision int64 `json:"revision"`
	// Token identifies the content; pass it back to wait for a change.
	Token     string     `json:"token"`
	Tasks     []Task     `json:"tasks"`
	Endpoints []Endpoint `json:"endpoints"`
	// DeleteVolumes are named volumes (full names) to delete when no task
	// of the node uses them (`down -v`).
	DeleteVolumes []string `json:"deleteVolumes,omitempty"`
	// Overlays connect the node's networks to the same networks on the
	// other nodes (a cluster's networks only).
	Overlays []Overlay `json:"overlays,omitempty"`
	// Ingress are the ports published through the routing mesh, every
	// node's to listen on, with the healthy tasks that serve them.
	Ingress []IngressPort `json:"ingress,omitempty"`
}

// IngressPort is a port published on every node, and its backends.
type IngressPort struct {
	Stack    string           `json:"stack"`
	Service  string           `json:"service"`
	Protocol string           `json:"protocol"`
	HostIP   string           `json:"hostIP,omitempty"`
	Port     uint16           `json:"port"`
	Backends []IngressBackend `json:"backends"`
}

// IngressBackend is a task serving an ingress port.
type IngressBackend struct {
	Task string `json:"task"`
	Node string `json:"node"`
	Addr string `json:"addr"` // the task's IP and target port
	// Via is the mesh address (host:port) of the task's node, for the
	// other nodes to reach it through; "" when the node has none.
	Via string `json:"via,omitempty"`
}

// Overlay is what a node needs to join one network across hosts: its own
// slice of the network and every other node's.
type Overlay struct {
	Network     string        `json:"network"` // full name
	VNI         int           `json:"vni"`
	Subnet      string        `json:"subnet"`      // the whole network
	LocalAddr   string        `json:"localAddr"`   // this node's host address
	LocalSubnet string        `json:"localSubnet"` // this node's slice
	Peers       []OverlayPeer `json:"peers"`
	// A dual-stack network's /64 and this node's /80 of it.
	Subnet6      string `json:"subnet6,omitempty"`
	LocalSubnet6 string `json:"localSubnet6,omitempty"`
}

// OverlayPeer is another node's slice of a network.
type OverlayPeer struct {
	Node    string `json:"node"`
	Addr    string `json:"addr"`              // the node's host address
	Subnet  string `json:"subnet"`            // its slice
	Subnet6 string `json:"subnet6,omitempty"` // its /80 of a dual-stack network
}

// Endpoint is a running task's address on one network, for service
// discovery: every name it answers to there.
type Endpoint struct {
	Network string   `json:"network"` // network full name
	Service string   `json:"service"`
	Names   []string `json:"names"` // container name, hostname, aliases
	IP      string   `json:"ip"`
	IP6     string   `json:"ip6,omitempty"`
}

// JoinRequest is an agent's first call to a server it has a token for.
type JoinRequest struct {
	Token    string `json:"token"`
	Hostname string `json:"hostname"`
	CSR      []byte `json:"csr"` // PEM certificate signing request
}

// JoinResponse hands the agent its identity.
type JoinResponse struct {
	NodeID string `json:"nodeID"`
	Cert   []byte `json:"cert"` // PEM node certificate
	CA     []byte `json:"ca"`   // PEM cluster CA
}

// RenewRequest asks for a new node certificate before the old expires.
type RenewRequest struct {
	CSR []byte `json:"csr"`
}

// JoinToken is what `drover node token` prints.
type JoinToken struct {
	Token     string `json:"token"`
	Advertise string `json:"advertise"`
	// ID names an API token (never its secret), for `drover client
	// revoke`; empty for the join token.
	ID string `json:"id,omitempty"`
}

// ClientToken describes an API token for remote clients; the secret is
// never kept, only a hash of it.
type ClientToken struct {
	ID        string    `json:"id"`
	Name      string    `json:"name,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	RevokedAt time.Time `json:"revokedAt,omitzero"`
}
