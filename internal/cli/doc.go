// Package cli holds Drover's client commands, in Docker Compose's
// conventions (up, down, ps, logs, config) plus the cluster's own (image,
// version). Every command talks to a server through the /v1 API only.
package cli
