// Package cluster runs several Drover hosts on one machine for cluster
// tests: each host is a network namespace joined to a test bridge in the
// root namespace by a veth pair, in which a test starts processes such as
// `drover agent` and its containerd. Each host also has a UTS namespace,
// so its processes see h1, h2, ... as hostname.
//
// Failures are made by killing processes (Proc.Kill9, Host.KillAll) and by
// cutting a host's link (Host.CutLink). Everything a Cluster creates is
// removed by t.Cleanup even when the test fails, and New sweeps what
// earlier runs that crashed left behind: every bridge, veth and namespace
// is named "drvc-<id>..." and a marker file under /run/drover-cluster-test
// records the pid (and its start time) of the process that made it.
//
// Containers started by an agent in a host have network namespaces of
// their own: removing the cluster kills their shims but not them. A test
// that runs containers removes them (drover down, or the driver's Recover
// and Destroy) before the cluster goes, as TestDroverServerInHost does.
//
// Processes are started in a host's network namespace only: unlike
// `ip netns exec`, the mount namespace is the machine's, so bind mounts an
// agent makes (the network namespaces of its containers, say) outlive it
// and are seen by its next incarnation after a kill -9. One consequence:
// /sys/class/net in a host shows the root namespace's interfaces; use
// netlink or /proc/sys/net, which follow the caller's network namespace.
package cluster
