package dns

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// fakeUpstream is a resolver standing in for the host's, on UDP and TCP.
type fakeUpstream struct {
	addr string

	mu      sync.Mutex
	queries map[string][]string // proto -> names asked
}

func (u *fakeUpstream) asked(proto string) []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.queries[proto]...)
}

func (u *fakeUpstream) ServeDNS(w mdns.ResponseWriter, req *mdns.Msg) {
	_, udp := w.LocalAddr().(*net.UDPAddr)
	proto := "tcp"
	if udp {
		proto = "udp"
	}
	q := req.Question[0]
	u.mu.Lock()
	u.queries[proto] = append(u.queries[proto], q.Name)
	u.mu.Unlock()

	resp := new(mdns.Msg)
	resp.SetReply(req)
	resp.RecursionAvailable = true
	a := func(s string) mdns.RR {
		rr, err := mdns.NewRR(q.Name + " 60 IN A " + s)
		if err != nil {
			panic(err)
		}
		return rr
	}
	switch strings.ToLower(q.Name) {
	case "example.com.":
		resp.Answer = []mdns.RR{a("192.0.2.1")}
	case "nx.example.":
		resp.Rcode = mdns.RcodeNameError
	case "big.example.":
		for i := range 80 {
			resp.Answer = append(resp.Answer, a(net.IPv4(192, 0, 2, byte(i)).String()))
		}
	case "fail.example.":
		resp.Rcode = mdns.RcodeServerFailure
	default:
		resp.Rcode = mdns.RcodeRefused
	}
	size := mdns.MaxMsgSize
	if udp {
		size = mdns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
	}
	resp.Truncate(size)
	w.WriteMsg(resp)
}

func startUpstream(t *testing.T, host string, port int) *fakeUpstream {
	t.Helper()
	u := &fakeUpstream{addr: addrOf(host, port), queries: map[string][]string{}}
	for _, proto := range []string{"udp", "tcp"} {
		started := make(chan struct{})
		srv := &mdns.Server{Addr: u.addr, Net: proto, Handler: u, NotifyStartedFunc: func() { close(started) }}
		errc := make(chan error, 1)
		go func() { errc <- srv.ListenAndServe() }()
		select {
		case <-started:
		case err := <-errc:
			t.Fatalf("upstream %s: %v", proto, err)
		}
		t.Cleanup(func() { srv.Shutdown() })
	}
	return u
}

// blackhole is a UDP socket that reads queries and never answers.
func blackhole(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	return pc.LocalAddr().String()
}

// closedPort is a UDP address where nothing listens (ICMP refused at once).
func closedPort(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

func TestForward(t *testing.T) {
	upPort := freePort(t)
	up := startUpstream(t, "127.0.0.2", upPort)
	port := freePort(t)
	s := newTestServer(t, Config{
		Port:      port,
		Upstreams: []string{closedPort(t), blackhole(t), up.addr},
		Timeout:   200 * time.Millisecond,
	})
	if err := s.Listen("hello_default", ip("127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	addr := addrOf("127.0.0.1", port)

	for _, proto := range []string{"udp", "tcp"} {
		t.Run(proto, func(t *testing.T) {
			r := query(t, proto, addr, "Example.COM.", mdns.TypeA)
			if r.Rcode != mdns.RcodeSuccess || !r.RecursionAvailable || len(r.Answer) != 1 {
				t.Fatalf("example.com: %v", r)
			}
			if a := r.Answer[0].(*mdns.A); !a.A.Equal(ip("192.0.2.1")) {
				t.Errorf("example.com: %v", a)
			}
			if r.Question[0].Name != "Example.COM." {
				t.Errorf("question %q, want the client's spelling", r.Question[0].Name)
			}

			r = query(t, proto, addr, "nx.example.", mdns.TypeA)
			if r.Rcode != mdns.RcodeNameError {
				t.Errorf("nx.example: rcode %s, want NXDOMAIN relayed", mdns.RcodeToString[r.Rcode])
			}

			// An upstream SERVFAIL moves on; with nothing after it, SERVFAIL.
			r = query(t, proto, addr, "fail.example.", mdns.TypeA)
			if r.Rcode != mdns.RcodeServerFailure {
				t.Errorf("fail.example: rcode %s", mdns.RcodeToString[r.Rcode])
			}
		})
	}

	// A big answer: the upstream truncates over UDP, Drover retries over TCP,
	// then truncates again for a UDP client, which retries over TCP.
	r := query(t, "udp", addr, "big.example.", mdns.TypeA)
	if !r.Truncated {
		t.Errorf("big over UDP: not truncated (%d answers)", len(r.Answer))
	}
	r = query(t, "tcp", addr, "big.example.", mdns.TypeA)
	if r.Truncated || len(r.Answer) != 80 {
		t.Errorf("big over TCP: TC=%v, %d answers", r.Truncated, len(r.Answer))
	}
	if tcp := up.asked("tcp"); !containsName(tcp, "big.example.") {
		t.Errorf("upstream TCP queries %v: no retry over TCP", tcp)
	}

	// Drover's names and addresses never reach the upstream.
	query(t, "udp", addr, "web.", mdns.TypeA)
	query(t, "udp", addr, "web.", mdns.TypeAAAA)
	query(t, "udp", addr, "11.0.1.10.in-addr.arpa.", mdns.TypePTR)
	query(t, "udp", addr, "11.0.2.10.in-addr.arpa.", mdns.TypePTR) // other network's
	query(t, "udp", addr, "1.0.0.127.in-addr.arpa.", mdns.TypePTR) // gateway
	for _, proto := range []string{"udp", "tcp"} {
		for _, n := range up.asked(proto) {
			if strings.HasSuffix(n, ".in-addr.arpa.") || n == "web." {
				t.Errorf("upstream was asked %q over %s", n, proto)
			}
		}
	}
}

func containsName(names []string, name string) bool {
	for _, n := range names {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

func TestForwardFailures(t *testing.T) {
	tests := []struct {
		name      string
		upstreams func(t *testing.T, self string) []string
		maxTime   time.Duration // generous: machines under load are slow
	}{
		{"no upstreams", func(*testing.T, string) []string { return nil }, 2 * time.Second},
		{"refused", func(t *testing.T, _ string) []string { return []string{closedPort(t)} }, 2 * time.Second},
		{"timeout", func(t *testing.T, _ string) []string { return []string{blackhole(t), blackhole(t)} }, 3 * time.Second},
		{"self only", func(_ *testing.T, self string) []string { return []string{self} }, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port := freePort(t)
			self := addrOf("127.0.0.1", port)
			s := newTestServer(t, Config{Port: port, Upstreams: tt.upstreams(t, self), Timeout: 200 * time.Millisecond})
			if err := s.Listen("hello_default", ip("127.0.0.1")); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			r := query(t, "udp", self, "example.com.", mdns.TypeA)
			if r.Rcode != mdns.RcodeServerFailure || !r.RecursionAvailable {
				t.Errorf("rcode %s RA %v, want SERVFAIL with RA", mdns.RcodeToString[r.Rcode], r.RecursionAvailable)
			}
			if d := time.Since(start); d > tt.maxTime {
				t.Errorf("took %v", d)
			}
		})
	}
}
