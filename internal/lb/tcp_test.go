package lb

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func tcpFrontend(port uint16, backends ...Backend) Frontend {
	return Frontend{Proto: "tcp", HostIP: loopback, Port: port, Backends: backends}
}

func TestTCPRoundRobin(t *testing.T) {
	leakCheck(t)
	var backends []Backend
	for _, name := range []string{"a", "b", "c"} {
		backends = append(backends, Backend{ID: name, Addr: tcpServer(t, namedEcho(name))})
	}
	b := newBalancer(t, Config{})
	port := freePort(t, "tcp")
	mustSync(t, b, tcpFrontend(port, backends...))

	var got []string
	for range 6 {
		c := dialFrontend(t, port)
		got = append(got, c.line(t))
		c.echo(t, "hello")
		c.Close()
	}
	if want := "a b c a b c"; strings.Join(got, " ") != want {
		t.Errorf("backends in order: got %q, want %q", strings.Join(got, " "), want)
	}
}

func TestTCPSkipsDeadBackend(t *testing.T) {
	leakCheck(t)
	dead := hostPort(freePort(t, "tcp")) // nothing listens there
	b := newBalancer(t, Config{})
	port := freePort(t, "tcp")
	mustSync(t, b, tcpFrontend(port,
		Backend{ID: "a", Addr: tcpServer(t, namedEcho("a"))},
		Backend{ID: "dead", Addr: dead},
		Backend{ID: "c", Addr: tcpServer(t, namedEcho("c"))},
	))

	// The second connection's turn is "dead", so it falls to "c"; the third
	// starts at "c" by round robin.
	var got []string
	for range 4 {
		c := dialFrontend(t, port)
		got = append(got, c.line(t))
		c.echo(t, "still here")
		c.Close()
	}
	if want := "a c c a"; strings.Join(got, " ") != want {
		t.Errorf("backends in order: got %q, want %q", strings.Join(got, " "), want)
	}

	// With every backend dead, the client's connection is closed.
	mustSync(t, b, tcpFrontend(port, Backend{ID: "dead", Addr: dead}))
	c := dialFrontend(t, port)
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Errorf("read %d bytes from a frontend whose backends are all dead", n)
	}
	eventually(t, "no active connections", activeIs(b, nil))
}

func TestSyncRemovedBackendDrains(t *testing.T) {
	leakCheck(t)
	a := Backend{ID: "a", Addr: tcpServer(t, namedEcho("a"))}
	bb := Backend{ID: "b", Addr: tcpServer(t, namedEcho("b"))}
	b := newBalancer(t, Config{})
	port := freePort(t, "tcp")
	mustSync(t, b, tcpFrontend(port, a, bb))

	old := dialFrontend(t, port)
	if got := old.line(t); got != "a" {
		t.Fatalf("first connection went to %q, want a", got)
	}
	eventually(t, "a counted", activeIs(b, map[string]int{"a": 1}))

	mustSync(t, b, tcpFrontend(port, bb))
	for i := range 3 {
		old.echo(t, fmt.Sprintf("draining %d", i))
		c := dialFrontend(t, port)
		if got := c.line(t); got != "b" {
			t.Errorf("new connection %d went to %q after a left the list", i, got)
		}
		c.echo(t, "new")
		c.Close()
	}
	if got := b.Active()["a"]; got != 1 {
		t.Errorf("Active()[a] = %d while draining, want 1", got)
	}
	old.echo(t, "still draining")

	old.Close()
	eventually(t, "a drained", func() bool { return b.Active()["a"] == 0 })
}

func TestSyncRemovedFrontendStopsListening(t *testing.T) {
	leakCheck(t)
	b := newBalancer(t, Config{})
	port := freePort(t, "tcp")
	mustSync(t, b, tcpFrontend(port, Backend{ID: "a", Addr: tcpServer(t, namedEcho("a"))}))
	open := dialFrontend(t, port)
	open.line(t)

	mustSync(t, b)
	c, err := net.DialTimeout("tcp", hostPort(port), ioTimeout)
	if err == nil {
		c.Close()
		t.Fatal("the frontend still accepts after Sync removed it")
	}
	if !isRefused(err) {
		t.Fatalf("dial after removal: %v, want connection refused", err)
	}
	// ... but the connection it had accepted runs on.
	open.echo(t, "after the listener closed")
	if got := b.Active()["a"]; got != 1 {
		t.Errorf("Active()[a] = %d, want 1", got)
	}
}

func TestSyncListenConflict(t *testing.T) {
	for _, proto := range []string{"tcp", "udp"} {
		t.Run(proto, func(t *testing.T) {
			leakCheck(t)
			port := freePort(t, proto)
			var holder io.Closer
			var err error
			if proto == "tcp" {
				holder, err = net.Listen("tcp", hostPort(port))
			} else {
				holder, err = net.ListenPacket("udp", hostPort(port))
			}
			if err != nil {
				t.Fatal(err)
			}
			defer holder.Close()

			b := newBalancer(t, Config{})
			fe := Frontend{Proto: proto, HostIP: loopback, Port: port, Backends: []Backend{{ID: "a", Addr: "127.0.0.1:1"}}}
			errs := b.Sync([]Frontend{fe})
			if len(errs) != 1 {
				t.Fatalf("Sync with the port taken: %v, want one error", errs)
			}
			want := fmt.Sprintf("publish 127.0.0.1:%d/%s: address already in use", port, proto)
			if errs[0].Error() != want {
				t.Errorf("error: got %q, want %q", errs[0], want)
			}
			if !errors.Is(errs[0], syscall.EADDRINUSE) {
				t.Errorf("error %v is not EADDRINUSE", errs[0])
			}
			var le *ListenError
			if !errors.As(errs[0], &le) || le.Port != port || le.Proto != proto {
				t.Errorf("error %#v does not name the frontend", errs[0])
			}

			// The same list again, once the port is free, opens it.
			holder.Close()
			mustSync(t, b, fe)
			b.mu.Lock()
			n := len(b.fes)
			b.mu.Unlock()
			if n != 1 {
				t.Errorf("%d frontends listening, want 1", n)
			}
		})
	}
}

func TestSyncRejectsInvalidFrontends(t *testing.T) {
	leakCheck(t)
	port := freePort(t, "tcp")
	ok := tcpFrontend(port)
	tests := []struct {
		fe   Frontend
		want string
	}{
		{Frontend{Proto: "sctp", Port: 80}, "publish 80/sctp: protocol \"sctp\" is not supported; use tcp or udp"},
		{Frontend{Proto: "tcp", Port: 0}, "publish 0/tcp: port 0 cannot be published"},
		{Frontend{Proto: "tcp", HostIP: "localhost", Port: 80}, "publish localhost:80/tcp: host IP \"localhost\" is not an IP address"},
		{ok, fmt.Sprintf("publish 127.0.0.1:%d/tcp: listed more than once", port)},
	}
	b := newBalancer(t, Config{})
	fes := []Frontend{ok}
	for _, tt := range tests {
		fes = append(fes, tt.fe)
	}
	errs := b.Sync(fes)
	if len(errs) != len(tests) {
		t.Fatalf("got %d errors %v, want %d", len(errs), errs, len(tests))
	}
	for i, tt := range tests {
		if errs[i].Error() != tt.want {
			t.Errorf("error %d: got %q, want %q", i, errs[i], tt.want)
		}
	}
}

func TestTCPHalfClose(t *testing.T) {
	// The backend answers only once the client has finished sending.
	countThenReply := func(c *net.TCPConn) {
		n, err := io.Copy(io.Discard, c)
		if err != nil {
			return
		}
		fmt.Fprintf(c, "got %d bytes", n)
	}
	for _, viaTunnel := range []bool{false, true} {
		name := "direct"
		if viaTunnel {
			name = "tunnel"
		}
		t.Run(name, func(t *testing.T) {
			leakCheck(t)
			be := Backend{ID: "a", Addr: tcpServer(t, countThenReply)}
			if viaTunnel {
				be.Via = startTunnel(t, &Tunnel{Allowed: allow("tcp " + be.Addr)})
			}
			b := newBalancer(t, Config{})
			port := freePort(t, "tcp")
			mustSync(t, b, tcpFrontend(port, be))

			c := dialFrontend(t, port)
			payload := strings.Repeat("x", 100_000)
			if _, err := io.WriteString(c, payload); err != nil {
				t.Fatal(err)
			}
			if err := c.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			reply, err := io.ReadAll(c)
			if err != nil {
				t.Fatal(err)
			}
			if want := "got 100000 bytes"; string(reply) != want {
				t.Errorf("reply after half-close: got %q, want %q", reply, want)
			}
			eventually(t, "connection uncounted", activeIs(b, nil))
		})
	}
}

func TestTCPViaTunnel(t *testing.T) {
	leakCheck(t)
	addr := tcpServer(t, namedEcho("remote"))
	tun := startTunnel(t, &Tunnel{Allowed: allow("tcp " + addr)})
	b := newBalancer(t, Config{})
	port := freePort(t, "tcp")
	mustSync(t, b, tcpFrontend(port, Backend{ID: "r", Addr: addr, Via: tun}))

	c := dialFrontend(t, port)
	// The name arrives right behind the tunnel's OK, often in the same read.
	if got := c.line(t); got != "remote" {
		t.Fatalf("got %q, want remote", got)
	}
	eventually(t, "r counted", activeIs(b, map[string]int{"r": 1}))

	// A megabyte each way at once: the stream is raw after the header.
	payload := make([]byte, 1<<20)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		errc <- err
	}()
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(c.r, got); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if string(got) != string(payload) {
		t.Error("payload through the tunnel came back altered")
	}
	c.Close()
	eventually(t, "r uncounted", activeIs(b, nil))
}

func TestTunnelRefusal(t *testing.T) {
	leakCheck(t)
	logs := &syncBuffer{}
	good := tcpServer(t, namedEcho("good"))
	denied := tcpServer(t, namedEcho("denied"))
	tun := startTunnel(t, &Tunnel{Allowed: allow("tcp " + good)})

	// The dialer reports the tunnel's reason.
	_, _, err := dialTunnel(t.Context(), time.Second, tun, "tcp", denied)
	var refused *refusedError
	if !errors.As(err, &refused) {
		t.Fatalf("dialTunnel to a denied address: %v, want a refusal", err)
	}
	want := "not allowed: tcp " + denied + " is not a published backend on this node"
	if refused.reason != want {
		t.Errorf("reason: got %q, want %q", refused.reason, want)
	}
	// Allowed is asked about the protocol too.
	if _, _, err := dialTunnel(t.Context(), time.Second, tun, "udp", good); !errors.As(err, &refused) {
		t.Errorf("udp to an address allowed for tcp only: %v, want a refusal", err)
	}

	// The balancer logs the reason and moves on to the next backend.
	b := newBalancer(t, Config{Logger: testLogger(t, logs)})
	port := freePort(t, "tcp")
	mustSync(t, b, tcpFrontend(port,
		Backend{ID: "denied", Addr: denied, Via: tun},
		Backend{ID: "good", Addr: good, Via: tun},
	))
	for range 2 {
		c := dialFrontend(t, port)
		if got := c.line(t); got != "good" {
			t.Errorf("got %q, want good", got)
		}
		c.Close()
	}
	if !strings.Contains(logs.String(), "not allowed: tcp "+denied) {
		t.Errorf("the balancer's log does not give the reason:\n%s", logs)
	}
}

// rawTunnel sends request to a tunnel and returns its first reply line.
func rawTunnel(t *testing.T, tun, request string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", tun, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	if request != "" {
		if _, err := io.WriteString(c, request); err != nil {
			t.Fatal(err)
		}
	}
	reply, err := io.ReadAll(c) // the tunnel closes after ERR
	if err != nil {
		t.Fatal(err)
	}
	return string(reply)
}

func TestTunnelBadRequests(t *testing.T) {
	leakCheck(t)
	dead := hostPort(freePort(t, "tcp"))
	tun := startTunnel(t, &Tunnel{
		Allowed:       func(proto, addr string) bool { return true },
		headerTimeout: 200 * time.Millisecond,
	})
	tests := []struct {
		request, want string
	}{
		{"GET / HTTP/1.1\r\n\r\n", "ERR bad header: want \"DRV1 <tcp|udp> <ip:port>\"\n"},
		{"DRV1 sctp 127.0.0.1:80\n", "ERR bad header: protocol \"sctp\" is not tcp or udp\n"},
		{"DRV1 tcp\n", "ERR bad header: missing address\n"},
		{"DRV1 tcp localhost:80\n", "ERR bad header: address \"localhost:80\" is not ip:port\n"},
		{"DRV1 tcp 127.0.0.1:0\n", "ERR bad header: port 0\n"},
		{"DRV1 tcp 0.0.0.0:80\n", "ERR bad header: 0.0.0.0 is not a unicast address\n"},
		{"DRV1 tcp " + strings.Repeat("1", 500) + "\n", "ERR bad header: longer than 128 bytes\n"},
		{"DRV1 tcp 127.0.0.1:8", "ERR no header within 200ms\n"}, // no newline
		{"", "ERR no header within 200ms\n"},
		{"DRV1 tcp " + dead + "\n", "ERR dial tcp " + dead + ": connection refused\n"},
	}
	for _, tt := range tests {
		if got := rawTunnel(t, tun, tt.request); got != tt.want {
			t.Errorf("request %.40q: got %q, want %q", tt.request, got, tt.want)
		}
	}
}

func TestTunnelWithoutAllowedRefusesAll(t *testing.T) {
	leakCheck(t)
	addr := tcpServer(t, namedEcho("a"))
	tun := startTunnel(t, &Tunnel{})
	if got := rawTunnel(t, tun, "DRV1 tcp "+addr+"\n"); !strings.HasPrefix(got, "ERR not allowed") {
		t.Errorf("got %q, want a refusal", got)
	}
}

func TestActiveCounts(t *testing.T) {
	leakCheck(t)
	b := newBalancer(t, Config{})
	port := freePort(t, "tcp")
	mustSync(t, b, tcpFrontend(port,
		Backend{ID: "a", Addr: tcpServer(t, namedEcho("a"))},
		Backend{ID: "b", Addr: tcpServer(t, namedEcho("b"))},
	))
	if got := b.Active(); len(got) != 0 {
		t.Errorf("Active before any connection: %v", got)
	}
	var conns []*client
	for range 5 {
		c := dialFrontend(t, port)
		c.line(t)
		conns = append(conns, c)
	}
	eventually(t, "a:3 b:2", activeIs(b, map[string]int{"a": 3, "b": 2}))
	conns[0].Close()
	eventually(t, "a:2 b:2", activeIs(b, map[string]int{"a": 2, "b": 2}))
	// A half-closed connection is still open: the backend may yet answer.
	conns[1].CloseWrite()
	if _, err := io.ReadAll(conns[1]); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a:2 b:1", activeIs(b, map[string]int{"a": 2, "b": 1}))

	// Active returns a copy.
	m := b.Active()
	m["a"] = 100
	if b.Active()["a"] != 2 {
		t.Error("changing Active's map changed the balancer's")
	}
	for _, c := range conns[2:] {
		c.Close()
	}
	eventually(t, "nothing counted", activeIs(b, nil))
}

func TestCloseCutsEverything(t *testing.T) {
	leakCheck(t)
	addr := tcpServer(t, namedEcho("a"))
	tun := startTunnel(t, &Tunnel{Allowed: allow("tcp " + addr)})
	b := New(Config{Logger: testLogger(t, nil)})
	port := freePort(t, "tcp")
	mustSync(t, b, tcpFrontend(port, Backend{ID: "a", Addr: addr}, Backend{ID: "r", Addr: addr, Via: tun}))
	direct, tunneled := dialFrontend(t, port), dialFrontend(t, port)
	direct.line(t)
	tunneled.line(t)

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{direct, tunneled} {
		if _, err := io.ReadAll(c); err != nil {
			t.Errorf("read after Close: %v, want EOF", err)
		}
	}
	if _, err := net.DialTimeout("tcp", hostPort(port), ioTimeout); !isRefused(err) {
		t.Errorf("dial after Close: %v, want connection refused", err)
	}
	if got := b.Active(); len(got) != 0 {
		t.Errorf("Active after Close: %v", got)
	}
	errs := b.Sync([]Frontend{tcpFrontend(port)})
	if len(errs) != 1 || !errors.Is(errs[0], ErrClosed) {
		t.Errorf("Sync after Close: %v, want ErrClosed", errs)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestConcurrentTrafficAndSync runs connections while Sync keeps changing
// the backends; every connection must reach a live backend and echo.
func TestConcurrentTrafficAndSync(t *testing.T) {
	leakCheck(t)
	var bs []Backend
	for _, name := range []string{"a", "b", "c"} {
		bs = append(bs, Backend{ID: name, Addr: tcpServer(t, namedEcho(name))})
	}
	b := newBalancer(t, Config{})
	port := freePort(t, "tcp")
	mustSync(t, b, tcpFrontend(port, bs...))

	stop := make(chan struct{})
	syncDone := make(chan struct{})
	go func() {
		defer close(syncDone)
		sets := [][]Backend{{bs[0], bs[1]}, {bs[1], bs[2]}, {bs[2]}, bs}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			b.Sync([]Frontend{tcpFrontend(port, sets[i%len(sets)]...)})
			b.Active()
			time.Sleep(time.Millisecond)
		}
	}()

	var wg sync.WaitGroup
	errc := make(chan error, 100)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				if err := echoOnce(port, fmt.Sprintf("w%d-%d", w, i)); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-syncDone
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	eventually(t, "nothing counted", activeIs(b, nil))
}

// echoOnce sends msg through the frontend, half-closes, and checks that the
// reply is a backend's name line and then msg.
func echoOnce(port uint16, msg string) error {
	c, err := net.DialTimeout("tcp", hostPort(port), ioTimeout)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	c.(*net.TCPConn).CloseWrite()
	reply, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("%s: %w", msg, err)
	}
	name, echo, _ := strings.Cut(string(reply), "\n")
	if (name != "a" && name != "b" && name != "c") || echo != msg {
		return fmt.Errorf("echo of %q: got %q", msg, reply)
	}
	return nil
}
