// Package integration holds Drover's integration tests: real etcd,
// containerd, runc and CNI plugins as root, driven through a real
// `drover server` and the drover CLI. Run them with `go test ./test/...`
// as root; under CI=true a missing prerequisite fails them.
package integration
