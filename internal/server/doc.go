// Package server is Drover's control plane: the /v1 HTTP API, the
// controller loop that turns services into tasks and places them, the node
// monitor that tracks agents' heartbeats, and the proxies that reach an
// agent for logs and images.
package server
