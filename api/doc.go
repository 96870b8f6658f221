// Package api holds the wire types of Drover's versioned HTTP/JSON API (/v1),
// its error codes and a Go client for it. The CLI, the agents and any other
// client speak to the server only through these types.
package api
