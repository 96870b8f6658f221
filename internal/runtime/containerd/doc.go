// Package containerd runs Drover's containers on containerd through its Go
// client: it implements runtime.Driver, runtime.ImageStore, runtime.Execer,
// runtime.Operator and runtime.ImageInspector.
//
// By default Open starts the distribution's containerd as a child in its own
// session, with a minimal config and its root, state, socket, log and pid
// file under DataDir/containerd, and supervises it (restarting it with
// back-off). The child survives a kill -9 of Drover, and so do the
// containers: a restarted agent reuses the containerd that answers on the
// socket and adopts the containers through Recover and Wait.
//
// Containers get Docker's defaults where containerd's differ: the ENTRYPOINT
// and CMD override rule, no no_new_privs, a HOSTNAME variable, RLIMIT_NOFILE
// 1024:524288; every rlimit is clamped to the host's hard limit, which an
// unprivileged-resource host (no CAP_SYS_RESOURCE) would otherwise make fail.
// Compose's container settings (settings.go) follow Docker too: its default
// capabilities, containerd's default seccomp profile (Docker's), masked and
// read-only /proc paths, a 64 MiB /dev/shm; privileged gets every capability
// the agent itself has. NetNSPath "host" is the host's network namespace.
//
// Exec, cp (through /proc/PID/root and os.Root, which refuses symlinks out of
// the container) and stats (cgroup v1 or v2 metrics, network bytes from the
// task's /proc/PID/net/dev) work on running containers only.
//
// Container output is written by the shim, so it outlives the agent: through
// Config.LoggerBinary, or raw into the log file (see rawLogFile for why that
// does not use containerd's file:// log URI).
package containerd
