// Command sim measures Drover's control plane at scale: in one process it
// starts the real server pieces (an embedded etcd member through
// internal/store, the server of internal/server with its leader election,
// reconcile loop, scheduler and node monitor, and its HTTP API handler) and
// N simulated nodes, deploys one stack of -tasks replicas spread over
// -services services, and reports placements per second, the time until
// every task is reported running, the server's memory and etcd's size.
//
//	go run ./test/bench/sim -nodes 1000 -tasks 100000 -services 100
//
// What is real: every store read and write, the deploy through the API,
// the reconciler and scheduler passes over full snapshots, node
// registration, heartbeats and task status reports through the server's
// HTTP handlers (called in-process, or over a unix socket with -transport
// unix), the node monitor.
//
// What is simulated: each node is a small agent (register, heartbeat, run
// its tasks through a fake runtime driver from internal/runtime/fake,
// report their status in the same sequence as internal/agent) without
// networks, DNS, files or processes. Nodes learn their tasks from one
// shared etcd watch on the task keys that hands each task to its node,
// instead of each polling GET /v1/nodes/{id}/assignments: that endpoint
// takes a full snapshot per poll, which thousands of nodes cannot share in
// one process (the report times one such poll, so its cost at scale can be
// read off). See docs/benchmarks.md.
package main
