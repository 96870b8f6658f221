package dns

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"

	mdns "github.com/miekg/dns"
)

func ip(s string) net.IP { return net.ParseIP(s).To4() }

// aAddrs returns the addresses of the A records in rrs, in order.
func aAddrs(t *testing.T, rrs []mdns.RR) []string {
	t.Helper()
	var out []string
	for _, rr := range rrs {
		a, ok := rr.(*mdns.A)
		if !ok {
			t.Fatalf("answer %v is not an A record", rr)
		}
		out = append(out, a.A.String())
	}
	return out
}

func question(name string, qtype uint16) mdns.Question {
	return mdns.Question{Name: name, Qtype: qtype, Qclass: mdns.ClassINET}
}

// testRecords is a small two-stack layout shared by the tests.
func testRecords() []Record {
	return []Record{
		// Out of order on purpose: rotation runs over the sorted set.
		{Network: "hello_default", Service: "web", Names: []string{"hello-web-2", "www"}, IP: ip("10.1.0.12")},
		{Network: "hello_default", Service: "web", Names: []string{"hello-web-1", "www"}, IP: ip("10.1.0.11")},
		{Network: "hello_default", Service: "web", Names: []string{"hello-web-3"}, IP: ip("10.1.0.13")},
		{Network: "hello_default", Service: "db", Names: []string{"hello-db-1", "Database"}, IP: ip("10.1.0.20")},
		{Network: "other_default", Service: "web", Names: []string{"other-web-1"}, IP: ip("10.2.0.11")},
		{Network: "other_default", Service: "cache", Names: []string{"other-cache-1"}, IP: ip("10.2.0.30")},
	}
}

func newTestServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	s := NewServer(cfg)
	t.Cleanup(func() { s.Close() })
	s.SetRecords(testRecords())
	return s
}

func TestResolveRotation(t *testing.T) {
	s := newTestServer(t, Config{})
	want := [][]string{
		{"10.1.0.11", "10.1.0.12", "10.1.0.13"},
		{"10.1.0.12", "10.1.0.13", "10.1.0.11"},
		{"10.1.0.13", "10.1.0.11", "10.1.0.12"},
		{"10.1.0.11", "10.1.0.12", "10.1.0.13"},
	}
	for i, w := range want {
		ans, ok := s.Resolve("hello_default", question("web.", mdns.TypeA))
		if !ok {
			t.Fatalf("query %d: web not known", i)
		}
		if got := aAddrs(t, ans); !slices.Equal(got, w) {
			t.Errorf("query %d: got %v, want %v", i, got, w)
		}
		for _, rr := range ans {
			if h := rr.Header(); h.Ttl > 1 || h.Name != "web." || h.Class != mdns.ClassINET {
				t.Errorf("query %d: bad header %+v", i, h)
			}
		}
	}

	// A table update that keeps the name keeps its place in the rotation.
	s.SetRecords(testRecords())
	ans, _ := s.Resolve("hello_default", question("web.", mdns.TypeA))
	if got := aAddrs(t, ans); got[0] != "10.1.0.12" {
		t.Errorf("after SetRecords: rotation restarted: %v", got)
	}

	// A shrinking set still rotates over what is left.
	recs := testRecords()[1:]
	s.SetRecords(recs)
	seen := map[string]bool{}
	for range 4 {
		ans, _ := s.Resolve("hello_default", question("web.", mdns.TypeA))
		got := aAddrs(t, ans)
		if len(got) != 2 {
			t.Fatalf("got %v, want two addresses", got)
		}
		seen[got[0]] = true
	}
	if len(seen) != 2 {
		t.Errorf("first answers %v: rotation does not cover the set", seen)
	}
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name    string
		network string
		q       mdns.Question
		wantOK  bool
		want    []string // sorted A addresses
	}{
		{"service", "hello_default", question("web.", mdns.TypeA), true, []string{"10.1.0.11", "10.1.0.12", "10.1.0.13"}},
		{"no trailing dot", "hello_default", question("web", mdns.TypeA), true, []string{"10.1.0.11", "10.1.0.12", "10.1.0.13"}},
		{"upper case", "hello_default", question("WeB.", mdns.TypeA), true, []string{"10.1.0.11", "10.1.0.12", "10.1.0.13"}},
		{"tasks", "hello_default", question("tasks.web.", mdns.TypeA), true, []string{"10.1.0.11", "10.1.0.12", "10.1.0.13"}},
		{"tasks upper case", "hello_default", question("TASKS.Web", mdns.TypeA), true, []string{"10.1.0.11", "10.1.0.12", "10.1.0.13"}},
		{"container name", "hello_default", question("hello-web-2.", mdns.TypeA), true, []string{"10.1.0.12"}},
		{"shared alias", "hello_default", question("www.", mdns.TypeA), true, []string{"10.1.0.11", "10.1.0.12"}},
		{"alias given in upper case", "hello_default", question("database.", mdns.TypeA), true, []string{"10.1.0.20"}},
		{"ANY answers A", "hello_default", question("db.", mdns.TypeANY), true, []string{"10.1.0.20"}},
		{"AAAA empty", "hello_default", question("web.", mdns.TypeAAAA), true, nil},
		{"MX empty", "hello_default", question("db.", mdns.TypeMX), true, nil},
		{"same service other network", "other_default", question("web.", mdns.TypeA), true, []string{"10.2.0.11"}},
		{"isolated service", "hello_default", question("cache.", mdns.TypeA), false, nil},
		{"isolated container", "other_default", question("hello-db-1.", mdns.TypeA), false, nil},
		{"isolated tasks", "other_default", question("tasks.db.", mdns.TypeA), false, nil},
		{"unknown", "hello_default", question("example.com.", mdns.TypeA), false, nil},
		{"no suffix stripping", "hello_default", question("web.hello_default.", mdns.TypeA), false, nil},
		{"unknown network", "nope", question("web.", mdns.TypeA), false, nil},
		{"other class", "hello_default", mdns.Question{Name: "web.", Qtype: mdns.TypeA, Qclass: mdns.ClassCHAOS}, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, Config{})
			ans, ok := s.Resolve(tt.network, tt.q)
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			got := aAddrs(t, ans)
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			for _, rr := range ans {
				if rr.Header().Name != mdns.Fqdn(tt.q.Name) {
					t.Errorf("answer name %q, want the question's %q", rr.Header().Name, mdns.Fqdn(tt.q.Name))
				}
			}
		})
	}
}

func TestResolvePTR(t *testing.T) {
	s := newTestServer(t, Config{})
	tests := []struct {
		name      string
		network   string
		q         mdns.Question
		wantOK    bool
		wantRcode int
		want      []string
	}{
		{"container name", "hello_default", question("12.0.1.10.in-addr.arpa.", mdns.TypePTR), true, mdns.RcodeSuccess, []string{"hello-web-2."}},
		{"upper case", "hello_default", question("12.0.1.10.IN-ADDR.ARPA", mdns.TypePTR), true, mdns.RcodeSuccess, []string{"hello-web-2."}},
		{"other network's address stays local", "hello_default", question("11.0.2.10.in-addr.arpa.", mdns.TypePTR), true, mdns.RcodeNameError, nil},
		{"A for reverse name", "hello_default", question("12.0.1.10.in-addr.arpa.", mdns.TypeA), true, mdns.RcodeSuccess, nil},
		{"unknown address forwarded", "hello_default", question("8.8.8.8.in-addr.arpa.", mdns.TypePTR), false, 0, nil},
		{"zone, not address", "hello_default", question("1.10.in-addr.arpa.", mdns.TypePTR), false, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkPTR(t, s, []string{tt.network}, tt.q, tt.wantOK, tt.wantRcode, tt.want)
		})
	}
}

// checkPTR looks q up in view and compares the outcome and the PTR names.
func checkPTR(t *testing.T, s *Server, view []string, q mdns.Question, wantOK bool, wantRcode int, want []string) {
	t.Helper()
	ans, rcode, ok := s.lookup(view, q)
	if ok != wantOK || (ok && rcode != wantRcode) {
		t.Fatalf("ok, rcode = %v, %s; want %v, %s", ok, mdns.RcodeToString[rcode], wantOK, mdns.RcodeToString[wantRcode])
	}
	var got []string
	for _, rr := range ans {
		got = append(got, rr.(*mdns.PTR).Ptr)
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestSetRecordsIgnoresBadRecords(t *testing.T) {
	s := NewServer(Config{})
	s.SetRecords([]Record{
		{Network: "n", Service: "v6", IP: net.ParseIP("fd00::1")},
		{Network: "n", Service: "none"},
		{Service: "nonet", IP: ip("10.0.0.1")},
		{Network: "n", Service: "ok", Names: []string{"", "bad..name"}, IP: ip("10.0.0.2")},
	})
	for _, name := range []string{"v6", "none", "nonet", "bad..name"} {
		if _, ok := s.Resolve("n", question(name, mdns.TypeA)); ok {
			t.Errorf("%s resolves", name)
		}
	}
	if ans, ok := s.Resolve("n", question("ok", mdns.TypeA)); !ok || len(ans) != 1 {
		t.Errorf("ok: %v %v", ans, ok)
	}
	s.SetRecords(nil)
	if _, ok := s.Resolve("n", question("ok", mdns.TypeA)); ok {
		t.Error("ok resolves after the table was emptied")
	}
}

func TestParseReverse(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" for not an address
	}{
		{"4.3.2.1.in-addr.arpa.", "1.2.3.4"},
		{"255.0.0.10.in-addr.arpa.", "10.0.0.255"},
		{"256.0.0.10.in-addr.arpa.", ""},
		{"01.0.0.10.in-addr.arpa.", ""},
		{"+1.0.0.10.in-addr.arpa.", ""},
		{"0.0.10.in-addr.arpa.", ""},
		{"5.4.3.2.1.in-addr.arpa.", ""},
		{"..0.10.in-addr.arpa.", ""},
		{"in-addr.arpa.", ""},
		{"4.3.2.1.ip6.arpa.", ""},
	}
	for _, tt := range tests {
		got, ok := parseReverse(tt.in)
		if tt.want == "" {
			if ok {
				t.Errorf("%q: got %v, want no address", tt.in, got.ip())
			}
			continue
		}
		if !ok || got.ip().String() != tt.want {
			t.Errorf("%q: got %v %v, want %s", tt.in, got.ip(), ok, tt.want)
		}
	}
}

func TestHostUpstreams(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	conf := `# generated
search example.com
nameserver 10.0.0.2
nameserver  127.0.0.53 # systemd-resolved
;nameserver 10.9.9.9
nameserver fd00::53
nameserver fe80::1%eth0
nameserver ::ffff:192.0.2.53
nameserver not-an-ip
nameserver 10.0.0.2
options edns0 trust-ad
`
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	got := HostUpstreams(path)
	want := []string{"10.0.0.2:53", "127.0.0.53:53", "[fd00::53]:53", "[fe80::1%eth0]:53", "192.0.2.53:53"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}

	if got := HostUpstreams(filepath.Join(dir, "missing")); got == nil || len(got) != 0 {
		t.Errorf("missing file: got %#v, want an empty list", got)
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("search x\n"), 0o644)
	if got := HostUpstreams(empty); len(got) != 0 {
		t.Errorf("no nameservers: got %q", got)
	}
}

// Dual-stack records answer AAAA with their IPv6 addresses, rotating, and A
// with the IPv4 ones.
func TestResolveAAAA(t *testing.T) {
	s := NewServer(Config{})
	t.Cleanup(func() { s.Close() })
	s.SetRecords([]Record{
		{Network: "ds_default", Service: "web", Names: []string{"ds-web-1"}, IP: ip("10.3.0.2"), IP6: net.ParseIP("fd00:1::2")},
		{Network: "ds_default", Service: "web", Names: []string{"ds-web-2"}, IP: ip("10.3.0.3"), IP6: net.ParseIP("fd00:1::3")},
	})
	firsts := map[string]bool{}
	for i := 0; i < 2; i++ {
		rrs, ok := s.Resolve("ds_default", question("web.", mdns.TypeAAAA))
		if !ok || len(rrs) != 2 {
			t.Fatalf("AAAA web: %v %v", rrs, ok)
		}
		a, isAAAA := rrs[0].(*mdns.AAAA)
		if !isAAAA {
			t.Fatalf("answer %v is not AAAA", rrs[0])
		}
		firsts[a.AAAA.String()] = true
	}
	if len(firsts) != 2 {
		t.Errorf("AAAA answers do not rotate: %v", firsts)
	}
	rrs, _ := s.Resolve("ds_default", question("ds-web-1.", mdns.TypeA))
	if got := aAddrs(t, rrs); !slices.Equal(got, []string{"10.3.0.2"}) {
		t.Errorf("A ds-web-1: %v", got)
	}
}
