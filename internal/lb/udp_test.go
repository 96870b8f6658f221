package lb

import (
	"bytes"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

func udpFrontend(port uint16, backends ...Backend) Frontend {
	return Frontend{Proto: "udp", HostIP: loopback, Port: port, Backends: backends}
}

// udpClient is one client address talking to a UDP frontend.
type udpClient struct {
	t  testing.TB
	pc *net.UDPConn
	fe netip.AddrPort
}

func newUDPClient(t testing.TB, port uint16) *udpClient {
	t.Helper()
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(loopback+":0")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return &udpClient{t: t, pc: pc, fe: netip.MustParseAddrPort(hostPort(port))}
}

func (c *udpClient) send(p []byte) {
	c.t.Helper()
	if _, err := c.pc.WriteToUDPAddrPort(p, c.fe); err != nil {
		c.t.Fatal(err)
	}
}

// recv returns the next datagram, failing the test unless it comes from the
// frontend's address, or ok=false after wait.
func (c *udpClient) recv(wait time.Duration) (p []byte, ok bool) {
	c.t.Helper()
	buf := make([]byte, maxDatagram)
	c.pc.SetReadDeadline(time.Now().Add(wait))
	n, from, err := c.pc.ReadFromUDPAddrPort(buf)
	if err != nil {
		if ne, isNet := err.(net.Error); isNet && ne.Timeout() {
			return nil, false
		}
		c.t.Fatal(err)
	}
	if from.Addr().Unmap() != c.fe.Addr() || from.Port() != c.fe.Port() {
		c.t.Fatalf("reply came from %v, not from the frontend %v", from, c.fe)
	}
	return buf[:n], true
}

// ask sends msg and returns the reply ("backend:msg").
func (c *udpClient) ask(msg string) string {
	c.t.Helper()
	c.send([]byte(msg))
	p, ok := c.recv(ioTimeout)
	if !ok {
		c.t.Fatalf("no reply to %q", msg)
	}
	return string(p)
}

func TestUDPDirect(t *testing.T) {
	leakCheck(t)
	b := newBalancer(t, Config{})
	port := freePort(t, "udp")
	mustSync(t, b, udpFrontend(port,
		Backend{ID: "a", Addr: udpServer(t, "a")},
		Backend{ID: "b", Addr: udpServer(t, "b")},
	))

	// Replies come from the frontend's own address, with PKTINFO in use.
	b.mu.Lock()
	fe := b.fes[feKey{"udp", loopback, port}]
	b.mu.Unlock()
	if runtime.GOOS == "linux" && fe.pktinfo != syscall.AF_INET {
		t.Errorf("PKTINFO not enabled on the frontend socket (family %d)", fe.pktinfo)
	}

	c1, c2 := newUDPClient(t, port), newUDPClient(t, port)
	if got := c1.ask("one"); got != "a:one" {
		t.Errorf("client 1: got %q, want a:one", got)
	}
	if got := c2.ask("two"); got != "b:two" {
		t.Errorf("client 2: got %q, want b:two", got)
	}
	// A session sticks to its backend.
	if got := c1.ask("again"); got != "a:again" {
		t.Errorf("client 1 again: got %q, want a:again", got)
	}
	eventually(t, "a:1 b:1", activeIs(b, map[string]int{"a": 1, "b": 1}))

	// Datagram boundaries hold, the empty one and a large one included.
	for _, size := range []int{0, 1, 1400, 60000} {
		p := bytes.Repeat([]byte{'z'}, size)
		c1.send(p)
		got, ok := c1.recv(ioTimeout)
		if !ok || string(got) != "a:"+string(p) {
			t.Errorf("datagram of %d bytes: got %d bytes back (ok=%v)", size, len(got), ok)
		}
	}
	if fe.pktinfoWarned.Load() {
		t.Error("the kernel refused the replies' PKTINFO")
	}
	if runtime.GOOS == "linux" && !repliesUsePktinfo(fe) {
		t.Error("the sessions reply without PKTINFO")
	}
}

func TestUDPSessionsExpire(t *testing.T) {
	leakCheck(t)
	// Generous: a loaded CI machine stalls for a good fraction of a second.
	const idle = time.Second
	b := newBalancer(t, Config{UDPIdle: idle})
	port := freePort(t, "udp")
	mustSync(t, b, udpFrontend(port,
		Backend{ID: "a", Addr: udpServer(t, "a")},
		Backend{ID: "b", Addr: udpServer(t, "b")},
	))
	c := newUDPClient(t, port)
	start := time.Now()
	if got := c.ask("x"); got != "a:x" {
		t.Fatalf("got %q, want a:x", got)
	}
	if got := b.Active(); got["a"] != 1 {
		t.Fatalf("Active = %v with a session open, want a:1", got)
	}
	eventually(t, "the session to expire", activeIs(b, nil))
	if d := time.Since(start); d < idle {
		t.Errorf("session expired after %v, before UDPIdle %v", d, idle)
	}

	// The same client starts a new session, on the next backend, which
	// lives as long as traffic keeps coming: here for 1.5 x UDPIdle.
	start = time.Now()
	for i := 0; time.Since(start) < idle*3/2; i++ {
		if got := c.ask("y"); got != "b:y" {
			t.Fatalf("datagram %d, %v in: got %q, want b:y", i, time.Since(start), got)
		}
		time.Sleep(idle / 10)
	}
	if got := b.Active(); got["b"] != 1 {
		t.Errorf("Active = %v during steady traffic, want b:1", got)
	}
	eventually(t, "the second session to expire", activeIs(b, nil))
}

func TestUDPRefusedBackendIsLeft(t *testing.T) {
	leakCheck(t)
	dead := hostPort(freePort(t, "udp")) // nothing listens: ICMP port unreachable
	b := newBalancer(t, Config{})
	port := freePort(t, "udp")
	mustSync(t, b, udpFrontend(port,
		Backend{ID: "dead", Addr: dead},
		Backend{ID: "a", Addr: udpServer(t, "a")},
	))
	c := newUDPClient(t, port)
	// The first datagram is lost to the dead backend, whose refusal ends the
	// session; a retry, as a UDP client does, starts one on "a".
	deadline := time.Now().Add(ioTimeout)
	for {
		c.send([]byte("hello"))
		if p, ok := c.recv(100 * time.Millisecond); ok {
			if string(p) != "a:hello" {
				t.Fatalf("got %q, want a:hello", p)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no reply: the session stayed on the dead backend")
		}
	}
	eventually(t, "only a counted", activeIs(b, map[string]int{"a": 1}))
}

func TestUDPViaTunnel(t *testing.T) {
	leakCheck(t)
	const idle = time.Second
	addr := udpServer(t, "remote")
	tun := startTunnel(t, &Tunnel{Allowed: allow("udp " + addr)})
	b := newBalancer(t, Config{UDPIdle: idle})
	port := freePort(t, "udp")
	mustSync(t, b, udpFrontend(port, Backend{ID: "r", Addr: addr, Via: tun}))

	c := newUDPClient(t, port)
	if got := c.ask("first"); got != "remote:first" {
		t.Fatalf("got %q, want remote:first", got)
	}
	if got := b.Active(); got["r"] != 1 {
		t.Errorf("Active = %v with a session open, want r:1", got)
	}
	// 65507 is the largest UDP payload over IPv4.
	for _, size := range []int{0, 1, 1400, 60000, 65507 - len("remote:")} {
		p := bytes.Repeat([]byte{'q'}, size)
		c.send(p)
		got, ok := c.recv(ioTimeout)
		if !ok || string(got) != "remote:"+string(p) {
			t.Errorf("datagram of %d bytes: got %d bytes back (ok=%v)", size, len(got), ok)
		}
	}
	eventually(t, "the session to expire", activeIs(b, nil))

	// A new session after expiry works the same.
	if got := c.ask("again"); got != "remote:again" {
		t.Errorf("got %q, want remote:again", got)
	}
}

func TestUDPTunnelRefusalFallsBack(t *testing.T) {
	leakCheck(t)
	logs := &syncBuffer{}
	denied := udpServer(t, "denied")
	tun := startTunnel(t, &Tunnel{Allowed: allow()})
	b := newBalancer(t, Config{Logger: testLogger(t, logs)})
	port := freePort(t, "udp")
	mustSync(t, b, udpFrontend(port,
		Backend{ID: "denied", Addr: denied, Via: tun},
		Backend{ID: "a", Addr: udpServer(t, "a")},
	))
	c := newUDPClient(t, port)
	if got := c.ask("x"); got != "a:x" {
		t.Errorf("got %q, want a:x", got)
	}
	if !strings.Contains(logs.String(), "not allowed: udp "+denied) {
		t.Errorf("the log does not give the tunnel's reason:\n%s", logs)
	}
}

func TestUDPFrontendRemovedEndsSessions(t *testing.T) {
	leakCheck(t)
	b := newBalancer(t, Config{})
	port := freePort(t, "udp")
	addr := udpServer(t, "a")
	mustSync(t, b, udpFrontend(port, Backend{ID: "a", Addr: addr}))
	c := newUDPClient(t, port)
	c.ask("x")
	eventually(t, "a counted", activeIs(b, map[string]int{"a": 1}))

	mustSync(t, b)
	eventually(t, "the session to end", activeIs(b, nil))
	// The port is free again.
	pc, err := net.ListenPacket("udp", hostPort(port))
	if err != nil {
		t.Fatalf("port still held after the frontend was removed: %v", err)
	}
	pc.Close()
}

func TestUDPSessionsCountPerBackend(t *testing.T) {
	leakCheck(t)
	b := newBalancer(t, Config{})
	port := freePort(t, "udp")
	mustSync(t, b, udpFrontend(port, Backend{ID: "u", Addr: udpServer(t, "u")}))
	for range 3 {
		newUDPClient(t, port).ask("hi")
	}
	eventually(t, "3 sessions", activeIs(b, map[string]int{"u": 3}))
}
