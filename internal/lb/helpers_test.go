package lb

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Every socket in these tests is on 127.0.0.1.
const loopback = "127.0.0.1"

// ioTimeout bounds every blocking read and write in the tests.
const ioTimeout = 5 * time.Second

// leakCheck fails the test if goroutines outlive it. Call it first, so its
// cleanup runs last, after the balancer, tunnels and test servers are closed.
func leakCheck(t testing.TB) {
	t.Helper()
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= base {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d at start, %d after cleanup\n%s", base, n, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// testLogger logs to the test's output, shown when it fails or with -v;
// and into buf, when not nil, for tests that check what was logged.
func testLogger(t testing.TB, buf *syncBuffer) *slog.Logger {
	var w io.Writer = t.Output()
	if buf != nil {
		w = io.MultiWriter(w, buf)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func nopLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newBalancer(t testing.TB, cfg Config) *Balancer {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t, nil)
	}
	b := New(cfg)
	t.Cleanup(func() { b.Close() })
	return b
}

// mustSync fails the test if Sync reports an error.
func mustSync(t testing.TB, b *Balancer, fes ...Frontend) {
	t.Helper()
	if errs := b.Sync(fes); len(errs) > 0 {
		t.Fatalf("Sync: %v", errs)
	}
}

// freePort returns a port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB, proto string) uint16 {
	t.Helper()
	var addr net.Addr
	switch proto {
	case "tcp":
		ln, err := net.Listen("tcp", loopback+":0")
		if err != nil {
			t.Fatal(err)
		}
		addr = ln.Addr()
		ln.Close()
	case "udp":
		pc, err := net.ListenPacket("udp", loopback+":0")
		if err != nil {
			t.Fatal(err)
		}
		addr = pc.LocalAddr()
		pc.Close()
	}
	_, p, _ := net.SplitHostPort(addr.String())
	port, _ := strconv.Atoi(p)
	return uint16(port)
}

func hostPort(port uint16) string { return net.JoinHostPort(loopback, strconv.Itoa(int(port))) }

// tcpServer serves handler on 127.0.0.1 until the test ends, and returns its
// address.
func tcpServer(t testing.TB, handler func(c *net.TCPConn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", loopback+":0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		conns connSet
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !conns.add(c) {
				c.Close()
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { conns.remove(c); c.Close() }()
				handler(c.(*net.TCPConn))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		conns.closeAll()
		wg.Wait()
	})
	return ln.Addr().String()
}

// namedEcho sends name and a newline, then echoes until EOF and half-closes.
func namedEcho(name string) func(c *net.TCPConn) {
	return func(c *net.TCPConn) {
		if _, err := io.WriteString(c, name+"\n"); err != nil {
			return
		}
		io.Copy(c, c)
		c.CloseWrite()
	}
}

// udpServer answers each datagram with name, ":" and the datagram.
func udpServer(t testing.TB, name string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", loopback+":0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, maxDatagram)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte(name+":"), buf[:n]...), from)
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	return pc.LocalAddr().String()
}

// startTunnel serves a Tunnel on 127.0.0.1 until the test ends, and returns
// its address. The test fails if Serve returns an error.
func startTunnel(t testing.TB, tun *Tunnel) string {
	t.Helper()
	ln, err := net.Listen("tcp", loopback+":0")
	if err != nil {
		t.Fatal(err)
	}
	if tun.Logger == nil {
		tun.Logger = testLogger(t, nil)
	}
	done := make(chan error, 1)
	go func() { done <- tun.Serve(ln) }()
	t.Cleanup(func() {
		ln.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// allow returns an Allowed func accepting exactly the given proto addr pairs
// ("tcp 127.0.0.1:80").
func allow(pairs ...string) func(proto, addr string) bool {
	return func(proto, addr string) bool {
		for _, p := range pairs {
			if p == proto+" "+addr {
				return true
			}
		}
		return false
	}
}

// client is a TCP connection to a frontend, read line by line.
type client struct {
	*net.TCPConn
	r *bufio.Reader
}

func dialFrontend(t testing.TB, port uint16) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", hostPort(port), ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(ioTimeout))
	t.Cleanup(func() { c.Close() })
	return &client{TCPConn: c.(*net.TCPConn), r: bufio.NewReader(c)}
}

func (c *client) line(t testing.TB) string {
	t.Helper()
	s, err := c.r.ReadString('\n')
	if err != nil {
		t.Fatalf("read: %v (got %q)", err, s)
	}
	return strings.TrimSuffix(s, "\n")
}

// echo writes msg and checks that it comes back.
func (c *client) echo(t testing.TB, msg string) {
	t.Helper()
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		t.Fatalf("write: %v", err)
	}
	if got := c.line(t); got != msg {
		t.Fatalf("echo: got %q, want %q", got, msg)
	}
}

// eventually polls cond until it holds or 5s pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// activeIs reports whether Active equals want (nil: no backend counted).
func activeIs(b *Balancer, want map[string]int) func() bool {
	return func() bool {
		got := b.Active()
		if len(got) != len(want) {
			return false
		}
		for id, n := range want {
			if got[id] != n {
				return false
			}
		}
		return true
	}
}

func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

// repliesUsePktinfo reports whether fe has sessions and all of them reply
// with a source address chosen through PKTINFO.
func repliesUsePktinfo(fe *frontend) bool {
	fe.mu.Lock()
	defer fe.mu.Unlock()
	for _, s := range fe.sessions {
		if s.oob == nil {
			return false
		}
	}
	return len(fe.sessions) > 0
}
