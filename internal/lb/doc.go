// Package lb is the layer-4 load balancer of Drover's routing mesh: on every
// node, it listens on every port a service publishes in ingress mode and
// forwards each TCP connection or UDP session to one of the service's healthy
// tasks, on this node or, through that node's Tunnel, on another.
//
// # Why userspace
//
// Docker's swarm mode does this with IPVS in the kernel. Drover's nodes have
// no IPVS, and iptables DNAT alone cannot reach a task on another node
// without an overlay that every node routes, so the Balancer is a userspace
// proxy, the shape of docker-proxy and of kube-proxy's old userspace mode.
// Between two TCP sockets io.Copy splices on Linux, so the payload does not
// pass through user memory; what the proxy costs is mostly a second socket
// pair and the goroutines. As with IPVS in NAT mode, a backend sees the
// connection come from this node (or from the tunnel's node), not from the
// client.
//
// # Frontends, backends and draining
//
// The agent calls Sync with the full list of published ports and, for each,
// the tasks that should get new traffic. Sync opens the listeners that are
// new, closes those no longer listed, and replaces each frontend's backend
// list. A port that cannot be bound is reported (*ListenError) and tried
// again on every later Sync that still lists it.
//
// Every connection picks its backend once, when it starts, by round robin
// over the list it finds; if the dial fails it tries each other backend once.
// Nothing already connected looks at the list again, so removing a backend
// from it drains that backend: its open connections run until their ends
// close them, and only new ones go elsewhere. To stop a task gracefully the
// agent takes it out of the list, waits until Active no longer counts it (or
// a grace period ends), then stops it. Removing a TCP frontend stops its listener the same
// way without cutting its connections. A UDP frontend's sessions do end with
// it, since their replies leave through its socket. Close cuts everything.
//
// A TCP connection relays both ways and half-closes: when one side shuts
// down its writing (EOF), the other side's socket gets CloseWrite and the
// opposite direction goes on until it ends too, so request/EOF/response
// protocols work. An error in either direction (a reset) ends both.
//
// A UDP frontend keeps a session per client address, tied to one backend
// from its first datagram to UDPIdle without traffic either way. A direct
// backend gets a connected UDP socket, so an ICMP "port unreachable" ends the
// session and the client's next datagram goes to the next backend. Replies
// leave from the frontend's socket, with IP_PKTINFO so that their source is
// the address the client wrote to even on a socket bound to every address.
//
// # Tunnel protocol
//
// A balancer reaches a task on another node through that node's Tunnel, over
// one TCP connection per proxied connection or UDP session:
//
//	client -> tunnel   "DRV1 <proto> <ip>:<port>\n"    proto is tcp or udp
//	tunnel -> client   "OK\n"  or  "ERR <reason>\n", then the tunnel closes
//
// The request line is at most 128 bytes, newline included; the address is an
// IP literal (IPv6 in brackets) with a non-zero port, no zone, not
// unspecified nor multicast. A client that sends no complete line within 5s
// gets "ERR no header within 5s". The tunnel refuses, with a reason, any
// address its Allowed func does not accept ("ERR not allowed: tcp
// 10.1.2.3:80 is not a published backend on this node") and any backend it
// cannot reach ("ERR dial tcp 10.1.2.3:80: connection refused"). Reply lines
// are at most 256 bytes.
//
// After "OK", a tcp tunnel is the raw byte stream of the backend connection,
// half-closes included. A udp tunnel carries datagrams both ways as frames:
// a 2-byte big-endian length, then that many bytes (0 to 65535). The
// balancer ends a udp session by closing the connection; the tunnel closes
// it when the backend refuses a datagram.
//
// The tunnel neither encrypts nor authenticates: Allowed limits it to the
// addresses that the published ports already expose to anyone who can reach
// them, and it should listen on the nodes' cluster network only.
package lb
