// Package mesh runs a node's routing mesh in a process of its own, so that
// published ports keep answering while the agent is down or restarting (as
// they did when the kernel published them): `drover mesh` holds the
// balancer (internal/lb) and the tunnel other nodes reach this node's
// tasks through, and takes its configuration from the agent over a
// root-only unix socket. The process keeps its last configuration on disk
// and starts with it again; the agent starts it when it does not answer
// and leaves it running when the agent itself stops.
package mesh
