// Package events is the server's event stream: a bounded in-memory history
// of what happened to stacks, services, containers and nodes, and a fan-out
// to the clients that follow it (`drover events`, GET /v1/events).
package events
