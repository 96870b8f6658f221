package dns

import (
	"net"
	"slices"
)

// Client is a container on this host that uses the Server as its resolver.
// The Server recognises it by the source address of its queries and lets it
// resolve the names of every network it is attached to.
type Client struct {
	// Attachments are its IPv4 addresses, one per network, in the
	// container's order: the first is the network whose gateway its
	// resolv.conf names.
	Attachments []Attachment
}

// Attachment is a client's address on one network.
type Attachment struct {
	Network string // network full name
	IP      net.IP
}

// clientKey is where a query comes from: the network whose listener
// received it and the source address. Addresses are unique on a network
// (each host leases its own slice of the subnet), not across networks.
type clientKey struct {
	network string
	ip      ipv4
}

// clientIndex maps each client address to the networks of its container,
// in the container's order. It is immutable once built.
type clientIndex map[clientKey][]string

// buildClients indexes cs. Two clients claiming one address (a container
// removed while its successor got the address) keep only the networks they
// have in common: the Server cannot tell which of them asks, and neither
// may see a network the other is not on.
func buildClients(cs []Client) clientIndex {
	ix := clientIndex{}
	for _, c := range cs {
		var nets []string
		for _, a := range c.Attachments {
			if a.Network != "" && !slices.Contains(nets, a.Network) {
				nets = append(nets, a.Network)
			}
		}
		for _, a := range c.Attachments {
			ip, ok := toIPv4(a.IP)
			if !ok || a.Network == "" {
				continue
			}
			k := clientKey{a.Network, ip}
			if prev, dup := ix[k]; dup {
				ix[k] = slices.DeleteFunc(slices.Clone(prev), func(n string) bool { return !slices.Contains(nets, n) })
				continue
			}
			ix[k] = nets
		}
	}
	return ix
}

// view is the networks whose names a query that arrived on network's
// listener from src may resolve, in precedence order: network itself (the
// DNS server the client asked, which is its first network unless it picked
// another gateway), then the client's other networks in the container's
// order. A source that is no known client sees network alone, as does every
// query from a container on one network.
func (ix clientIndex) view(network string, src net.IP) []string {
	v := []string{network}
	ip, ok := toIPv4(src)
	if !ok {
		return v
	}
	for _, n := range ix[clientKey{network, ip}] {
		if n != network {
			v = append(v, n)
		}
	}
	return v
}
