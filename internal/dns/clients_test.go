package dns

import (
	"net"
	"slices"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

func attach(network, addr string) Attachment { return Attachment{Network: network, IP: ip(addr)} }

func TestClientView(t *testing.T) {
	clients := []Client{
		{Attachments: []Attachment{attach("n1", "10.1.0.2"), attach("n2", "10.2.0.2"), attach("n3", "10.3.0.2")}},
		{Attachments: []Attachment{attach("n2", "10.2.0.4")}},
		// Two containers claim 10.1.0.7 on n1 (one going, one coming):
		// only what both are on is visible.
		{Attachments: []Attachment{attach("n1", "10.1.0.7"), attach("n2", "10.2.0.7"), attach("n3", "10.3.0.7")}},
		{Attachments: []Attachment{attach("n4", "10.4.0.7"), attach("n1", "10.1.0.7"), attach("n3", "10.3.0.8")}},
		// Attachments without a usable address or network are ignored.
		{Attachments: []Attachment{attach("n5", "10.5.0.1"), {Network: "n6", IP: net.ParseIP("fd00::1")}, {Network: "", IP: ip("10.9.0.1")}}},
	}
	ix := buildClients(clients)
	tests := []struct {
		name    string
		network string
		src     net.IP
		want    []string
	}{
		{"first network asked", "n1", ip("10.1.0.2"), []string{"n1", "n2", "n3"}},
		{"second network asked first", "n2", ip("10.2.0.2"), []string{"n2", "n1", "n3"}},
		{"third network asked", "n3", ip("10.3.0.2"), []string{"n3", "n1", "n2"}},
		{"one network", "n2", ip("10.2.0.4"), []string{"n2"}},
		{"unknown source", "n1", ip("10.1.0.99"), []string{"n1"}},
		{"address of another network", "n1", ip("10.2.0.2"), []string{"n1"}},
		{"no source", "n1", nil, []string{"n1"}},
		{"IPv6 source", "n1", net.ParseIP("fd00::2"), []string{"n1"}},
		{"shared address: common networks", "n1", ip("10.1.0.7"), []string{"n1", "n3"}},
		{"one owner of a shared address", "n2", ip("10.2.0.7"), []string{"n2", "n1", "n3"}},
		{"other owner of a shared address", "n4", ip("10.4.0.7"), []string{"n4", "n1", "n3"}},
		{"IPv6 attachment ignored", "n5", ip("10.5.0.1"), []string{"n5", "n6"}},
		{"no network name", "", ip("10.9.0.1"), []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ix.view(tt.network, tt.src); !slices.Equal(got, tt.want) {
				t.Errorf("view(%s, %v) = %v, want %v", tt.network, tt.src, got, tt.want)
			}
		})
	}
}

// multiNetRecords: a on n1 and n2, b only on n2, c only on n1, d only on
// n3, and both on n1 and n2 (a name two of a's networks know).
func multiNetRecords() []Record {
	return []Record{
		{Network: "n1", Service: "a", Names: []string{"p-a-1", "alpha"}, IP: ip("10.1.0.2")},
		{Network: "n2", Service: "a", Names: []string{"p-a-1", "alpha"}, IP: ip("10.2.0.2")},
		{Network: "n2", Service: "b", Names: []string{"p-b-1", "bee"}, IP: ip("10.2.0.4")},
		{Network: "n1", Service: "c", Names: []string{"p-c-1"}, IP: ip("10.1.0.3")},
		{Network: "n3", Service: "d", Names: []string{"p-d-1"}, IP: ip("10.3.0.5")},
		{Network: "n1", Service: "both", Names: []string{"p-both-1"}, IP: ip("10.1.0.9")},
		{Network: "n2", Service: "both", Names: []string{"p-both-1"}, IP: ip("10.2.0.9")},
	}
}

func multiNetClients() []Client {
	return []Client{
		{Attachments: []Attachment{attach("n1", "10.1.0.2"), attach("n2", "10.2.0.2")}},
		{Attachments: []Attachment{attach("n2", "10.2.0.4")}},
		{Attachments: []Attachment{attach("n1", "10.1.0.3")}},
		{Attachments: []Attachment{attach("n3", "10.3.0.5")}},
	}
}

func TestResolveFromClientNetworks(t *testing.T) {
	s := NewServer(Config{})
	t.Cleanup(func() { s.Close() })
	s.SetRecords(multiNetRecords())
	s.SetClients(multiNetClients())
	const aOn1, aOn2, bOn2, cOn1, unknownOn1 = "10.1.0.2", "10.2.0.2", "10.2.0.4", "10.1.0.3", "10.1.0.99"
	tests := []struct {
		name    string
		network string // the listener asked
		src     string
		q       string
		wantOK  bool
		want    []string
	}{
		{"a: service of its second network", "n1", aOn1, "b", true, []string{"10.2.0.4"}},
		{"a: tasks. of its second network", "n1", aOn1, "tasks.b", true, []string{"10.2.0.4"}},
		{"a: container name on its second network", "n1", aOn1, "P-B-1", true, []string{"10.2.0.4"}},
		{"a: alias on its second network", "n1", aOn1, "bee", true, []string{"10.2.0.4"}},
		{"a: service of its first network", "n1", aOn1, "c", true, []string{"10.1.0.3"}},
		{"a: itself, on the asked network", "n1", aOn1, "a", true, []string{"10.1.0.2"}},
		{"a: on both networks, asked n1", "n1", aOn1, "both", true, []string{"10.1.0.9"}},
		{"a: on both networks, asked n2", "n2", aOn2, "both", true, []string{"10.2.0.9"}},
		{"a: from n2 still sees n1", "n2", aOn2, "c", true, []string{"10.1.0.3"}},
		{"a: not a network it is on", "n1", aOn1, "d", false, nil},
		{"a: not tasks. of a network it is on", "n1", aOn1, "tasks.d", false, nil},
		{"b: a on the shared network", "n2", bOn2, "a", true, []string{"10.2.0.2"}},
		{"b: alias of a on the shared network", "n2", bOn2, "alpha", true, []string{"10.2.0.2"}},
		{"b: not c", "n2", bOn2, "c", false, nil},
		{"b: not c's container name", "n2", bOn2, "p-c-1", false, nil},
		{"b: not d", "n2", bOn2, "d", false, nil},
		{"c: a on the shared network", "n1", cOn1, "a", true, []string{"10.1.0.2"}},
		{"c: not b", "n1", cOn1, "b", false, nil},
		{"unknown source: its network only", "n1", unknownOn1, "b", false, nil},
		{"unknown source: its network", "n1", unknownOn1, "c", true, []string{"10.1.0.3"}},
		{"a's n2 address on n1's listener", "n1", aOn2, "b", false, nil},
		{"forwarded names stay forwarded", "n1", aOn1, "example.com", false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ans, ok := s.ResolveFrom(tt.network, ip(tt.src), question(tt.q, mdns.TypeA))
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v (answers %v)", ok, tt.wantOK, ans)
			}
			if got := aAddrs(t, ans); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}

	// Without the clients, every query sees the asked network alone.
	s.SetClients(nil)
	if _, ok := s.ResolveFrom("n1", ip(aOn1), question("b", mdns.TypeA)); ok {
		t.Error("b resolves from a after its client record went")
	}
}

func TestResolvePTRFromClientNetworks(t *testing.T) {
	s := NewServer(Config{})
	t.Cleanup(func() { s.Close() })
	s.SetRecords(multiNetRecords())
	s.SetClients(multiNetClients())
	tests := []struct {
		name      string
		network   string
		src       string
		q         string
		wantRcode int
		want      []string
	}{
		{"a: b's address on its second network", "n1", "10.1.0.2", "4.0.2.10.in-addr.arpa.", mdns.RcodeSuccess, []string{"p-b-1."}},
		{"a: d's address", "n1", "10.1.0.2", "5.0.3.10.in-addr.arpa.", mdns.RcodeNameError, nil},
		{"b: c's address", "n2", "10.2.0.4", "3.0.1.10.in-addr.arpa.", mdns.RcodeNameError, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkPTR(t, s, s.clients.Load().view(tt.network, ip(tt.src)), question(tt.q, mdns.TypePTR), true, tt.wantRcode, tt.want)
		})
	}
}

// TestServerKnowsClientBySource checks that the listeners tell clients
// apart by the source address of the query, over UDP and TCP.
func TestServerKnowsClientBySource(t *testing.T) {
	port := freePort(t)
	s := NewServer(Config{Port: port})
	t.Cleanup(func() { s.Close() })
	s.SetRecords(multiNetRecords())
	s.SetClients([]Client{{Attachments: []Attachment{attach("n1", "127.0.0.4"), attach("n2", "10.2.0.77")}}})
	if err := s.Listen("n1", ip("127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	server := addrOf("127.0.0.1", port)
	ask := func(t *testing.T, proto, from, name string) *mdns.Msg {
		t.Helper()
		var local net.Addr = &net.UDPAddr{IP: ip(from)}
		if proto == "tcp" {
			local = &net.TCPAddr{IP: ip(from)}
		}
		m := new(mdns.Msg)
		m.SetQuestion(mdns.Fqdn(name), mdns.TypeA)
		c := &mdns.Client{Net: proto, Timeout: 2 * time.Second, Dialer: &net.Dialer{LocalAddr: local, Timeout: 2 * time.Second}}
		r, _, err := c.Exchange(m, server)
		if err != nil {
			t.Fatalf("%s query %s from %s: %v", proto, name, from, err)
		}
		return r
	}
	for _, proto := range []string{"udp", "tcp"} {
		t.Run(proto, func(t *testing.T) {
			r := ask(t, proto, "127.0.0.4", "b")
			if got := aAddrs(t, r.Answer); r.Rcode != mdns.RcodeSuccess || !slices.Equal(got, []string{"10.2.0.4"}) {
				t.Errorf("b from the client: rcode %s, %v", mdns.RcodeToString[r.Rcode], got)
			}
			// Another source on n1 is no client on n2: with no upstreams,
			// the name fails.
			r = ask(t, proto, "127.0.0.5", "b")
			if r.Rcode != mdns.RcodeServerFailure || len(r.Answer) != 0 {
				t.Errorf("b from another source: rcode %s, %v", mdns.RcodeToString[r.Rcode], r.Answer)
			}
		})
	}
}
