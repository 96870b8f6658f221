// Package store keeps Drover's cluster state in etcd: typed reads and
// writes of stacks, services, tasks, task status and nodes under the
// /drover/ prefix, consistent snapshots, compare-and-swap transactions and
// change notifications. It also starts the embedded etcd member that a
// server uses by default.
package store
