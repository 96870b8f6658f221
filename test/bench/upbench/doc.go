// Command upbench measures how long `drover up -d` takes to get N replicas
// of one service running, against starting the same containers from the
// same image directly on containerd: N sequential `ctr run -d`, and the
// containerd Go client starting N containers sequentially and with N
// goroutines at once.
//
// All four methods use the one containerd that `drover server` starts under
// its data dir; ctr and the Go client work in their own containerd namespace
// ("bench") after `ctr images import` of the same OCI archive. Each
// measurement is repeated -runs times; the median and the minimum are
// printed per N, with the ratios drover/ctr and drover/client-concurrent.
// For one run of -breakdown N it also reads the server log, the task files
// and the task statuses to show where drover's time goes.
//
// It must run as root on a host with containerd, runc, ctr and the CNI
// plugins (see scripts/bench-up.sh and docs/benchmarks.md):
//
//	go run ./test/bench/upbench -n 1,10,50 -runs 3
//
// Everything it makes (server, containerd, containers, bridges, network
// namespaces, temp dirs) is removed before it exits, also on failure and on
// SIGINT or SIGTERM.
package main
