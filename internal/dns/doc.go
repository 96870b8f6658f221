// Package dns serves the name service that containers on a Drover network use
// as their resolver, answering service, task, container and alias names with
// addresses on that network and forwarding every other name to the host's
// resolvers.
//
// One Server runs per agent. It listens, over UDP and TCP, on the gateway
// address of each container network on the host (Listen). What a query can
// see is decided by where it comes from: the network whose listener it
// arrived on and, for a container of this host on several networks
// (SetClients, recognised by the query's source address), that container's
// other networks too. A name resolves only to members of those networks,
// with the member's address on the network it shares with the client, so
// networks stay isolated from each other. When a name exists on several of
// them, the network the query arrived on wins, then the container's networks
// in its order. The agent replaces the whole table of names whenever task
// health or membership changes (SetRecords); queries never see a
// half-applied table.
//
// Answers for Drover's names carry a TTL of zero and rotate (round robin) on
// every query, so clients spread load across healthy tasks and notice changes
// at once. Known names have no AAAA records: such queries get an empty
// NOERROR answer, which makes clients fall back to A without waiting.
// Reverse (PTR) queries for Drover's own addresses are answered locally and
// never leak to the host's resolvers.
//
// Upstreams usually come from the host's resolv.conf (HostUpstreams). Because
// the Server runs in the host's network namespace, loopback resolvers such as
// systemd-resolved's 127.0.0.53 work as upstreams, which they would not from
// inside a container.
package dns
