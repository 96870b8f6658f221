// Package buildkitd runs a node's BuildKit daemon, the builder behind
// `drover build` and `up --build`.
//
// The agent starts buildkitd on the first build (through package
// supervise, as it runs containerd) with its own root and socket under the
// data dir and BuildKit's containerd worker pointed at the agent's own
// containerd and namespace: what a build makes is in the node's image
// store at once, with no export and import, and images already there
// (loaded or built before) serve as FROM images without a registry.
package buildkitd
