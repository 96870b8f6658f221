// Package scheduler places tasks on nodes. It is pure: it takes a snapshot
// of nodes and the tasks already placed and returns a plan, reading no store,
// clock or randomness it was not handed.
//
// Every placement rule is a Filter in a pipeline (ready, availability,
// constraints, max replicas per node, host ports, memory, CPUs). A node
// takes a task only if every enabled filter passes; when none does, each
// node is charged to the first filter that rejected it and the filters'
// Explain texts make the task's reason, e.g.
//
//	0/3 nodes: 2 lack node.labels.zone==east, 1 has 512MiB free of 1GiB reserved
//
// Among the nodes that pass, the strategy picks one: spread (fewest tasks of
// the service, then fewest tasks, then node ID) or binpack (most reserved,
// then most tasks, then node ID), after spreading over the values of the
// service's placement preferences. Ties are broken by node ID: the same
// snapshot always gives the same plan.
package scheduler
