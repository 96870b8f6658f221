// Package runtime defines the small driver interface through which the agent
// runs containers (start, wait, stop, destroy, inspect, recover) and manages
// images. The containerd implementation lives in runtime/containerd.
package runtime
