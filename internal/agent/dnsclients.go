package agent

import (
	"maps"
	"net"
	"slices"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/dns"
)

// dnsClient describes a task's container to the node's DNS server, which
// recognises its queries by their source address and lets it resolve the
// names of every network it is attached to: its address on each network,
// in the task's order (eth0's network first, the one resolv.conf names).
func dnsClient(t api.Task, addrs map[string]string) dns.Client {
	var c dns.Client
	for _, n := range t.Networks {
		full := n.Network.FullName
		if ip := net.ParseIP(addrs[full]); ip != nil {
			c.Attachments = append(c.Attachments, dns.Attachment{Network: full, IP: ip})
		}
	}
	return c
}

// addDNSClient tells the DNS server about a task's container once its
// networks are attached, before it starts, so its first query already
// sees all its networks.
func (a *Agent) addDNSClient(t api.Task, addrs map[string]string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.dnsClients[t.ID] = dnsClient(t, addrs)
	a.publishDNSClientsLocked()
}

// removeDNSClient forgets a task's container, before its addresses can go
// to another one.
func (a *Agent) removeDNSClient(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.dnsClients[id]; !ok {
		return
	}
	delete(a.dnsClients, id)
	a.publishDNSClientsLocked()
}

// publishDNSClientsLocked hands the whole set over under mu, so that two
// workers' changes reach the server in the order they were made.
func (a *Agent) publishDNSClientsLocked() {
	cs := make([]dns.Client, 0, len(a.dnsClients))
	for _, id := range slices.Sorted(maps.Keys(a.dnsClients)) {
		cs = append(cs, a.dnsClients[id])
	}
	a.cfg.DNS.SetClients(cs)
}
