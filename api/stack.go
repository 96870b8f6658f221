package api

import "time"

// StackSpec is one Compose project after translation: what a client asks the
// server to run. It is sent whole on every `up`; the server compares it with
// what it already runs.
type StackSpec struct {
	Name     string        `json:"name"`
	Services []ServiceSpec `json:"services"`
	Networks []NetworkSpec `json:"networks,omitempty"`
	Volumes  []VolumeSpec  `json:"volumes,omitempty"`
	// Secrets and configs carry their content: the client reads files and
	// environment variables. The server keeps the content apart and never
	// shows it in listings.
	Secrets []SecretSpec `json:"secrets,omitempty"`
	Configs []SecretSpec `json:"configs,omitempty"`
}

// NetworkSpec is a Compose network of a stack, by its key in the file.
type NetworkSpec struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
	// External names an existing network (by its full name) instead of
	// creating one.
	External     bool              `json:"external,omitempty"`
	ExternalName string            `json:"externalName,omitempty"`
	Internal     bool              `json:"internal,omitempty"` // no route out
	EnableIPv6   bool              `json:"enableIPv6,omitempty"`
	Subnet       string            `json:"subnet,omitempty"` // from ipam.config, if given
	DriverOpts   map[string]string `json:"driverOpts,omitempty"`
}

// VolumeSpec is a top-level named volume.
type VolumeSpec struct {
	Name         string            `json:"name"`
	External     bool              `json:"external,omitempty"`
	ExternalName string            `json:"externalName,omitempty"`
	Driver       string            `json:"driver,omitempty"` // "" or "local"
	DriverOpts   map[string]string `json:"driverOpts,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
}

// SecretSpec is a top-level secret or config with its content.
type SecretSpec struct {
	Name    string `json:"name"`
	Content []byte `json:"content,omitempty"`
	// External names a secret already stored on the server.
	External bool `json:"external,omitempty"`
}

// Stack is a deployed Compose project as the server stores it.
type Stack struct {
	Name     string    `json:"name"`
	Networks []Network `json:"networks"`
	Volumes  []Volume  `json:"volumes,omitempty"`
	Removing bool      `json:"removing,omitempty"`
	// RemoveVolumes asks, with Removing, that the named volumes go too
	// (`down -v`).
	RemoveVolumes bool `json:"removeVolumes,omitempty"`
	// Revision is the number of the stack's latest revision (each up that
	// changes a service, and each rollback, makes one).
	Revision  int       `json:"revision,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Network is a stack's network with the addresses the control plane leased
// to it. Name is the key in the Compose file; FullName is "<stack>_<name>" as
// Docker Compose names it; Bridge is the Linux bridge on each host.
type Network struct {
	Stack    string `json:"stack"`
	Name     string `json:"name"`
	FullName string `json:"fullName"`
	Subnet   string `json:"subnet"`
	Gateway  string `json:"gateway"`
	Bridge   string `json:"bridge"`
	Internal bool   `json:"internal,omitempty"`
	MTU      int    `json:"mtu,omitempty"`
	// Subnet6 and Gateway6 are set for dual-stack networks (enable_ipv6).
	Subnet6  string `json:"subnet6,omitempty"`
	Gateway6 string `json:"gateway6,omitempty"`
	// External networks belong to another project; this one only uses
	// them.
	External bool `json:"external,omitempty"`
	// VNI is the network's VXLAN id across hosts (a cluster's networks
	// only).
	VNI int `json:"vni,omitempty"`
	// ClusterSubnet is set in an agent's assignments when the network
	// spans hosts: the whole network, while Subnet and Gateway are the
	// node's own slice of it.
	ClusterSubnet string `json:"clusterSubnet,omitempty"`
}

// Volume is a stack's named volume. FullName is the volume's name on the
// nodes: "<stack>_<name>" as Docker Compose names it, or the external name.
type Volume struct {
	Name       string            `json:"name"`
	FullName   string            `json:"fullName"`
	External   bool              `json:"external,omitempty"`
	DriverOpts map[string]string `json:"driverOpts,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
}

// DeployResult answers a stack deployment.
type DeployResult struct {
	Stack    Stack     `json:"stack"`
	Services []Service `json:"services"`
	// Changed lists the services whose spec changed (or that are new).
	Changed []string `json:"changed,omitempty"`
	// Orphans lists services the server runs for this stack that the spec
	// no longer names; they are removed only when asked to.
	Orphans []string `json:"orphans,omitempty"`
	// Updated lists the changed services whose running tasks are replaced
	// by a rollout (see each service's Rollout).
	Updated  []string `json:"updated,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// StackInfo is a stack with its services, as listed by the API.
type StackInfo struct {
	Stack    Stack     `json:"stack"`
	Services []Service `json:"services"`
}
