// Package agent runs the tasks the control plane assigns to its node: it
// prepares their image and network, starts their containers through a
// runtime driver, watches them and reports what it sees, adopts the
// containers it finds after a restart, keeps the node's DNS answers current
// and serves the node's logs and images to the server.
package agent
