package dns

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// freePort returns a port that is free for both UDP and TCP on 127.0.0.1,
// 127.0.0.2 and 127.0.0.3 at the time of the call.
func freePort(t *testing.T) int {
	t.Helper()
	for range 50 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		pc.Close()
		if port < 1024 {
			continue
		}
		free := true
		for _, host := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"} {
			addr := net.JoinHostPort(host, strconv.Itoa(port))
			l, err := net.Listen("tcp", addr)
			if err != nil {
				free = false
				break
			}
			l.Close()
			pc, err := net.ListenPacket("udp", addr)
			if err != nil {
				free = false
				break
			}
			pc.Close()
		}
		if free {
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

func addrOf(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

func query(t *testing.T, proto, addr, name string, qtype uint16) *mdns.Msg {
	t.Helper()
	r, err := tryQuery(proto, addr, name, qtype, 2*time.Second)
	if err != nil {
		t.Fatalf("%s query %s %s to %s: %v", proto, name, mdns.TypeToString[qtype], addr, err)
	}
	return r
}

func tryQuery(proto, addr, name string, qtype uint16, timeout time.Duration) (*mdns.Msg, error) {
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	c := &mdns.Client{Net: proto, Timeout: timeout}
	r, _, err := c.Exchange(m, addr)
	return r, err
}

func TestServerUDPAndTCP(t *testing.T) {
	port := freePort(t)
	s := newTestServer(t, Config{Port: port})
	if err := s.Listen("hello_default", ip("127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Listen("other_default", ip("127.0.0.2")); err != nil {
		t.Fatal(err)
	}
	hello, other := addrOf("127.0.0.1", port), addrOf("127.0.0.2", port)

	for _, proto := range []string{"udp", "tcp"} {
		t.Run(proto, func(t *testing.T) {
			r := query(t, proto, hello, "WEB.", mdns.TypeA)
			if r.Rcode != mdns.RcodeSuccess || !r.RecursionAvailable || !r.Authoritative || r.Truncated {
				t.Errorf("header: %v", r.MsgHdr)
			}
			if len(r.Answer) != 3 {
				t.Errorf("web: %v", r.Answer)
			}
			if r.Answer[0].Header().Name != "WEB." {
				t.Errorf("answer name %q, want the question's spelling", r.Answer[0].Header().Name)
			}

			r = query(t, proto, hello, "tasks.web.", mdns.TypeA)
			if len(r.Answer) != 3 {
				t.Errorf("tasks.web: %v", r.Answer)
			}

			r = query(t, proto, hello, "web.", mdns.TypeAAAA)
			if r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 0 {
				t.Errorf("AAAA: rcode %s, answers %v", mdns.RcodeToString[r.Rcode], r.Answer)
			}

			// Isolation: each listener sees its own network only. With no
			// upstreams, unknown names fail.
			r = query(t, proto, other, "web.", mdns.TypeA)
			if got := aAddrs(t, r.Answer); len(got) != 1 || got[0] != "10.2.0.11" {
				t.Errorf("web on other: %v", got)
			}
			r = query(t, proto, other, "db.", mdns.TypeA)
			if r.Rcode != mdns.RcodeServerFailure || len(r.Answer) != 0 {
				t.Errorf("db on other: rcode %s, answers %v", mdns.RcodeToString[r.Rcode], r.Answer)
			}

			// The gateway's own reverse name stays local.
			r = query(t, proto, hello, "1.0.0.127.in-addr.arpa.", mdns.TypePTR)
			if r.Rcode != mdns.RcodeNameError {
				t.Errorf("gateway PTR: rcode %s", mdns.RcodeToString[r.Rcode])
			}
			r = query(t, proto, hello, "11.0.1.10.in-addr.arpa.", mdns.TypePTR)
			if len(r.Answer) != 1 || r.Answer[0].(*mdns.PTR).Ptr != "hello-web-1." {
				t.Errorf("container PTR: %v", r.Answer)
			}
		})
	}
}

func TestServerRotationOverUDP(t *testing.T) {
	port := freePort(t)
	s := newTestServer(t, Config{Port: port})
	if err := s.Listen("hello_default", ip("127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	firsts := map[string]int{}
	for range 6 {
		r := query(t, "udp", addrOf("127.0.0.1", port), "web.", mdns.TypeA)
		firsts[aAddrs(t, r.Answer)[0]]++
	}
	if len(firsts) != 3 || firsts["10.1.0.11"] != 2 {
		t.Errorf("first answers over 6 queries: %v, want each of 3 twice", firsts)
	}
}

func TestServerTruncation(t *testing.T) {
	port := freePort(t)
	s := NewServer(Config{Port: port})
	t.Cleanup(func() { s.Close() })
	var recs []Record
	for i := range 100 {
		recs = append(recs, Record{Network: "n", Service: "big", IP: net.IPv4(10, 0, 1, byte(i+1))})
	}
	s.SetRecords(recs)
	if err := s.Listen("n", ip("127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	addr := addrOf("127.0.0.1", port)

	r := query(t, "udp", addr, "big.", mdns.TypeA)
	if !r.Truncated || len(r.Answer) >= 100 {
		t.Errorf("UDP without EDNS: TC=%v with %d answers, want TC and fewer", r.Truncated, len(r.Answer))
	}
	r.Compress = true // as sent
	if b, _ := r.Pack(); len(b) > mdns.MinMsgSize {
		t.Errorf("UDP reply is %d bytes", len(b))
	}

	r = query(t, "tcp", addr, "big.", mdns.TypeA)
	if r.Truncated || len(r.Answer) != 100 {
		t.Errorf("TCP: TC=%v with %d answers, want all 100", r.Truncated, len(r.Answer))
	}

	m := new(mdns.Msg)
	m.SetQuestion("big.", mdns.TypeA)
	m.SetEdns0(4096, false)
	r, _, err := (&mdns.Client{Net: "udp", Timeout: 2 * time.Second}).Exchange(m, addr)
	if err != nil {
		t.Fatal(err)
	}
	if r.Truncated || len(r.Answer) != 100 || r.IsEdns0() == nil {
		t.Errorf("UDP with EDNS 4096: TC=%v, %d answers, OPT %v", r.Truncated, len(r.Answer), r.IsEdns0())
	}
}

func TestServerListenLifecycle(t *testing.T) {
	port := freePort(t)
	s := newTestServer(t, Config{Port: port})
	a1, a3 := addrOf("127.0.0.1", port), addrOf("127.0.0.3", port)
	// Positive checks wait long enough for a loaded machine; a socket that is
	// gone refuses at once, so negative checks need not wait long.
	query := func(addr string, timeout time.Duration) bool {
		r, err := tryQuery("udp", addr, "db.", mdns.TypeA, timeout)
		return err == nil && len(r.Answer) == 1
	}
	answers := func(addr string) bool { return query(addr, 3*time.Second) }
	silent := func(addr string) bool { return !query(addr, 300*time.Millisecond) }

	if err := s.Listen("hello_default", ip("127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Listen("hello_default", ip("127.0.0.1")); err != nil {
		t.Fatalf("second Listen on the same address: %v", err)
	}
	if !answers(a1) {
		t.Fatal("no answer on 127.0.0.1")
	}

	// Another network cannot take an address that is in use.
	if err := s.Listen("other_default", ip("127.0.0.1")); err == nil {
		t.Error("two networks listen on one address")
	}

	// Move.
	if err := s.Listen("hello_default", ip("127.0.0.3")); err != nil {
		t.Fatal(err)
	}
	if !answers(a3) {
		t.Error("no answer on the new address")
	}
	if !silent(a1) {
		t.Error("old address still answers after the move")
	}

	// The old address is free again at once.
	if err := s.Listen("other_default", ip("127.0.0.1")); err != nil {
		t.Errorf("rebinding the old address: %v", err)
	}
	s.Unlisten("other_default")
	s.Unlisten("other_default") // no-op

	s.Unlisten("hello_default")
	if !silent(a3) {
		t.Error("answers after Unlisten")
	}
	if err := s.Listen("hello_default", ip("127.0.0.3")); err != nil {
		t.Fatalf("Listen after Unlisten: %v", err)
	}
	if !answers(a3) {
		t.Error("no answer after listening again")
	}

	if err := s.Listen("bad", nil); err == nil {
		t.Error("Listen without an address succeeded")
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !silent(a3) {
		t.Error("answers after Close")
	}
	if err := s.Listen("hello_default", ip("127.0.0.3")); !errors.Is(err, ErrClosed) {
		t.Errorf("Listen after Close: %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestServerConcurrentSetRecords replaces the table while queries run; run
// with -race. Every answer must come whole from one generation of the table.
func TestServerConcurrentSetRecords(t *testing.T) {
	port := freePort(t)
	s := NewServer(Config{Port: port})
	t.Cleanup(func() { s.Close() })
	gen := func(g int) []Record {
		g %= 250 // the generation is the address's second byte
		var recs []Record
		for i := range 1 + g%4 {
			recs = append(recs, Record{
				Network: "n", Service: "web", Names: []string{fmt.Sprintf("web-%d", i)},
				IP: net.IPv4(10, byte(g), 0, byte(i+1)),
			})
		}
		return recs
	}
	s.SetRecords(gen(0))
	if err := s.Listen("n", ip("127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	addr := addrOf("127.0.0.1", port)

	stop := make(chan struct{})
	var writer sync.WaitGroup
	writer.Go(func() {
		for g := 1; ; g++ {
			select {
			case <-stop:
				return
			default:
			}
			s.SetRecords(gen(g))
		}
	})

	check := func(rrs []mdns.RR) error {
		if len(rrs) == 0 {
			return errors.New("no answers")
		}
		g := rrs[0].(*mdns.A).A[1]
		for _, rr := range rrs {
			if rr.(*mdns.A).A[1] != g {
				return fmt.Errorf("answers mix generations: %v", rrs)
			}
		}
		if want := 1 + int(g)%4; len(rrs) != want {
			return fmt.Errorf("generation %d: %d answers, want %d", g, len(rrs), want)
		}
		return nil
	}

	var readers sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 8 {
		readers.Go(func() {
			proto := "udp"
			if i%2 == 1 {
				proto = "tcp"
			}
			for range 50 {
				r, err := tryQuery(proto, addr, "web.", mdns.TypeA, 2*time.Second)
				if err == nil {
					err = check(r.Answer)
				}
				if err != nil {
					errs <- err
					return
				}
				ans, ok := s.Resolve("n", question("tasks.web", mdns.TypeA))
				if !ok {
					errs <- errors.New("tasks.web unknown")
					return
				}
				if err := check(ans); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	readers.Wait()
	close(stop)
	writer.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
