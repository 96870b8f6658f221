package api

import "time"

// StackSpec is one Compose project after translation: what a client asks the
// server to run. It is sent whole on every `up`; the server compares it with
// what it already runs.
type StackSpec struct {
	Name     string        `json:"name"`
	Services []ServiceSpec `json:"services"`
	Networks []NetworkSpec `json:"networks,omitempty"`
}

// NetworkSpec is a Compose network of a stack, by its key in the file.
type NetworkSpec struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
}

// Stack is a deployed Compose project as the server stores it.
type Stack struct {
	Name      string    `json:"name"`
	Networks  []Network `json:"networks"`
	Removing  bool      `json:"removing,omitempty"`
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
}

// DeployResult answers a stack deployment.
type DeployResult struct {
	Stack    Stack     `json:"stack"`
	Services []Service `json:"services"`
	// Changed lists the services whose spec changed (or that are new).
	Changed []string `json:"changed,omitempty"`
	// Orphans lists services the server runs for this stack that the spec
	// no longer names; they are removed only when asked to.
	Orphans  []string `json:"orphans,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// StackInfo is a stack with its services, as listed by the API.
type StackInfo struct {
	Stack    Stack     `json:"stack"`
	Services []Service `json:"services"`
}
