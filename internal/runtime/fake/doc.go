// Package fake is a scripted, in-memory runtime driver: it implements
// runtime.Driver, runtime.ImageStore, runtime.Execer, runtime.Operator and
// runtime.ImageInspector without processes, images on disk or root, so that
// tests and the control-plane simulation (test/bench/sim) can run an agent's
// side of a cluster of thousands of nodes in one process.
//
// A Runtime plays the part of one host's containerd: it holds the images and
// containers, and they outlive the Drivers connected to it, so that closing
// one Driver and recovering with another behaves like an agent restart. A
// Script says what happens to containers of each image: how long pulls and
// starts take, which fail and how, when containers exit and with which code,
// whether they ignore their stop signal. Timestamps come from an injectable
// clock; latencies and exits are real timers, so scripts should keep them
// short in tests.
//
// Every method is safe for concurrent use. Wait needs no goroutine per
// container (an exit is delivered to the waiting channels directly), so a
// Runtime can hold hundreds of thousands of running containers.
package fake
