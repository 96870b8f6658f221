package dns

import (
	"bytes"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	mdns "github.com/miekg/dns"
)

// ttl of every answer for Drover's own names. Zero keeps caches from holding
// on to an address after its task stops and lets each query rotate.
const ttl = 0

// Record is one address on one network and the names it answers to.
type Record struct {
	Network string   // network full name, e.g. "hello_default"
	Service string   // service name, e.g. "web"; also answers as tasks.<service>
	Names   []string // other names: container name (first; it answers PTR), hostname, aliases
	IP      net.IP   // IPv4; records without one are ignored
	IP6     net.IP   // IPv6 on dual-stack networks (answers AAAA); may be nil
}

// ipv4 is an IPv4 address usable as a map key.
type ipv4 [4]byte

func toIPv4(ip net.IP) (ipv4, bool) {
	v4 := ip.To4()
	if v4 == nil {
		return ipv4{}, false
	}
	return ipv4(v4), true
}

func (a ipv4) ip() net.IP { return net.IPv4(a[0], a[1], a[2], a[3]).To4() }

// entry is the answer set of one name on one network.
type entry struct {
	ips  []ipv4     // sorted, distinct: the rotation is stable whatever order records come in
	ips6 [][16]byte // sorted, distinct AAAA answers
	// next counts queries; shared with the entry of the same name in the
	// previous table so that rotation carries on across SetRecords.
	next *atomic.Uint64
}

// netTable is what one network can see.
type netTable struct {
	names map[string]*entry // canonical (lower case, fully qualified) name
	ptr   map[ipv4][]string // fully qualified names for reverse lookups
	seen  map[string][]ipv4 // scratch while building
	seen6 map[string][][16]byte
}

// table is an immutable snapshot of all records, swapped in whole.
type table struct {
	nets map[string]*netTable
	own  map[ipv4]struct{} // every address in any network: reverse lookups stay local
}

// canonical turns a query or record name into the table's key form.
func canonical(name string) string {
	return strings.ToLower(mdns.Fqdn(name))
}

// buildTable makes a table from recs, reusing prev's rotation counters.
// Names that are not valid domain names are skipped and returned.
func buildTable(recs []Record, prev *table) (*table, []string) {
	t := &table{nets: map[string]*netTable{}, own: map[ipv4]struct{}{}}
	var skipped []string
	for _, r := range recs {
		ip, ok := toIPv4(r.IP)
		if !ok || r.Network == "" {
			continue
		}
		nt := t.nets[r.Network]
		if nt == nil {
			nt = &netTable{names: map[string]*entry{}, ptr: map[ipv4][]string{}, seen: map[string][]ipv4{}, seen6: map[string][][16]byte{}}
			t.nets[r.Network] = nt
		}
		t.own[ip] = struct{}{}

		var names []string
		if r.Service != "" {
			names = append(names, r.Service, "tasks."+r.Service)
		}
		names = append(names, r.Names...)
		for _, n := range names {
			if n == "" {
				continue
			}
			if _, ok := mdns.IsDomainName(n); !ok {
				skipped = append(skipped, n)
				continue
			}
			key := canonical(n)
			nt.seen[key] = append(nt.seen[key], ip)
			if v6 := r.IP6.To16(); v6 != nil && r.IP6.To4() == nil {
				nt.seen6[key] = append(nt.seen6[key], [16]byte(v6))
			}
		}

		ptrName := r.Service
		if len(r.Names) > 0 && r.Names[0] != "" {
			ptrName = r.Names[0]
		}
		if _, ok := mdns.IsDomainName(ptrName); ok && ptrName != "" {
			fq := mdns.Fqdn(ptrName)
			if !slices.Contains(nt.ptr[ip], fq) {
				nt.ptr[ip] = append(nt.ptr[ip], fq)
			}
		}
	}

	for netName, nt := range t.nets {
		for key, ips := range nt.seen {
			slices.SortFunc(ips, func(a, b ipv4) int { return bytes.Compare(a[:], b[:]) })
			e := &entry{ips: slices.Compact(ips)}
			if v6 := nt.seen6[key]; len(v6) > 0 {
				slices.SortFunc(v6, func(a, b [16]byte) int { return bytes.Compare(a[:], b[:]) })
				e.ips6 = slices.Compact(v6)
			}
			if old := prev.lookupEntry(netName, key); old != nil {
				e.next = old.next
			} else {
				e.next = new(atomic.Uint64)
			}
			nt.names[key] = e
		}
		nt.seen, nt.seen6 = nil, nil
	}
	return t, skipped
}

func (t *table) lookupEntry(network, key string) *entry {
	if t == nil {
		return nil
	}
	nt := t.nets[network]
	if nt == nil {
		return nil
	}
	return nt.names[key]
}

// Resolve answers q as the listener of network would answer a container
// that is on that network alone, without forwarding: ok reports whether the
// name is Drover's to answer. A known name with no records of the asked
// type gives ok and no answers (NOERROR, no data). Each call for a known
// name advances its rotation.
func (s *Server) Resolve(network string, q mdns.Question) (answers []mdns.RR, ok bool) {
	return s.ResolveFrom(network, nil, q)
}

// ResolveFrom is Resolve for a query from src: a client (SetClients) also
// resolves the names of its other networks.
func (s *Server) ResolveFrom(network string, src net.IP, q mdns.Question) (answers []mdns.RR, ok bool) {
	answers, _, ok = s.lookup(s.clients.Load().view(network, src), q)
	return answers, ok
}

// lookup answers q from the networks of view, the first network that knows
// the name winning, with the response code to send. The answer is the
// target's address on that network, which the client shares with it.
func (s *Server) lookup(view []string, q mdns.Question) (answers []mdns.RR, rcode int, ok bool) {
	if q.Qclass != mdns.ClassINET && q.Qclass != mdns.ClassANY {
		return nil, 0, false
	}
	t := s.table.Load()
	key := canonical(q.Name)
	name := mdns.Fqdn(q.Name) // answer with the client's spelling (0x20 case randomization)

	if ip, isRev := parseReverse(key); isRev {
		_, inTable := t.own[ip]
		if !inTable && !s.isGateway(ip) {
			return nil, 0, false
		}
		var names []string
		for _, n := range view {
			if nt := t.nets[n]; nt != nil && len(nt.ptr[ip]) > 0 {
				names = nt.ptr[ip]
				break
			}
		}
		if len(names) == 0 {
			// Ours, but nothing on the client's networks has it.
			return nil, mdns.RcodeNameError, true
		}
		if q.Qtype != mdns.TypePTR && q.Qtype != mdns.TypeANY {
			return nil, mdns.RcodeSuccess, true
		}
		for _, n := range names {
			answers = append(answers, &mdns.PTR{
				Hdr: mdns.RR_Header{Name: name, Rrtype: mdns.TypePTR, Class: mdns.ClassINET, Ttl: ttl},
				Ptr: n,
			})
		}
		return answers, mdns.RcodeSuccess, true
	}

	var e *entry
	for _, n := range view {
		if e = t.lookupEntry(n, key); e != nil {
			break
		}
	}
	if e == nil {
		return nil, 0, false
	}
	if q.Qtype != mdns.TypeA && q.Qtype != mdns.TypeAAAA && q.Qtype != mdns.TypeANY {
		return nil, mdns.RcodeSuccess, true
	}
	turn := e.next.Add(1) - 1
	if q.Qtype != mdns.TypeAAAA {
		n := len(e.ips)
		start := int(turn % uint64(n))
		for i := range n {
			answers = append(answers, &mdns.A{
				Hdr: mdns.RR_Header{Name: name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: ttl},
				A:   e.ips[(start+i)%n].ip(),
			})
		}
	}
	if n := len(e.ips6); n > 0 && q.Qtype != mdns.TypeA {
		start := int(turn % uint64(n))
		for i := range n {
			ip := e.ips6[(start+i)%n]
			answers = append(answers, &mdns.AAAA{
				Hdr:  mdns.RR_Header{Name: name, Rrtype: mdns.TypeAAAA, Class: mdns.ClassINET, Ttl: ttl},
				AAAA: net.IP(ip[:]),
			})
		}
	}
	return answers, mdns.RcodeSuccess, true
}

// parseReverse reads a full IPv4 reverse name (d.c.b.a.in-addr.arpa.).
// Partial names (zones such as 168.192.in-addr.arpa.) are not addresses.
func parseReverse(key string) (ipv4, bool) {
	const suffix = ".in-addr.arpa."
	rest, found := strings.CutSuffix(key, suffix)
	if !found {
		return ipv4{}, false
	}
	labels := strings.Split(rest, ".")
	if len(labels) != 4 {
		return ipv4{}, false
	}
	var ip ipv4
	for i, l := range labels {
		if l == "" || len(l) > 3 || (len(l) > 1 && l[0] == '0') || strings.Trim(l, "0123456789") != "" {
			return ipv4{}, false
		}
		v, err := strconv.Atoi(l)
		if err != nil || v > 255 {
			return ipv4{}, false
		}
		ip[3-i] = byte(v)
	}
	return ip, true
}
