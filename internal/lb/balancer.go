package lb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Backend is one task that serves a frontend.
type Backend struct {
	ID   string // task id
	Addr string // the task's IP:port (its target port on its network)
	Via  string // "" when the task runs on this node; else the HOST:PORT of that node's Tunnel
}

// Frontend is one published port.
type Frontend struct {
	Proto    string // "tcp" or "udp"
	HostIP   string // "" listens on every address (IPv4 and IPv6, one dual-stack socket as net.Listen("tcp", ":port") gives); else only that IP
	Port     uint16
	Backends []Backend
}

// Config configures a Balancer.
type Config struct {
	Logger      *slog.Logger  // nil discards
	DialTimeout time.Duration // default 3s
	UDPIdle     time.Duration // a UDP session with no traffic this long ends; default 60s
}

const (
	defaultDialTimeout = 3 * time.Second
	defaultUDPIdle     = 60 * time.Second
	// noBackendLogEvery rate-limits the "no backend" warning per frontend:
	// a port whose tasks are all down would otherwise log once per packet.
	noBackendLogEvery = 10 * time.Second
)

// ErrClosed is wrapped by the errors Sync returns after Close.
var ErrClosed = errors.New("load balancer closed")

// ListenError reports a frontend that Sync could not open. Sync tries it
// again on every later call that still lists it.
type ListenError struct {
	Proto  string
	HostIP string
	Port   uint16
	Err    error
}

// Error reads like "publish 8080/tcp: address already in use".
func (e *ListenError) Error() string {
	return "publish " + publishLabel(e.Proto, e.HostIP, e.Port) + ": " + reason(e.Err)
}

func (e *ListenError) Unwrap() error { return e.Err }

func publishLabel(proto, hostIP string, port uint16) string {
	p := strconv.Itoa(int(port)) + "/" + proto
	if hostIP != "" {
		return net.JoinHostPort(hostIP, p)
	}
	return p
}

// reason is the short, user-facing cause of a socket error: the errno text
// ("address already in use") rather than Go's full "listen tcp ...: bind: ..."
// chain, which repeats what the caller already says.
func reason(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timed out"
	}
	return err.Error()
}

// Balancer is the userspace L4 proxy for the ports published on one node. Its
// methods are safe for concurrent use.
type Balancer struct {
	log         *slog.Logger
	dialTimeout time.Duration
	udpIdle     time.Duration

	// ctx is canceled by Close and aborts dials in progress.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex // serializes Sync and Close; guards fes and closed
	fes    map[feKey]*frontend
	closed bool

	conns connSet        // both ends of every proxied TCP connection, cut by Close
	wg    sync.WaitGroup // every goroutine the Balancer starts

	activeMu sync.Mutex
	active   map[string]int // backend ID -> open connections and sessions
}

// New returns a Balancer with no frontends; Sync opens them.
func New(cfg Config) *Balancer {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Balancer{
		log:         log.With("component", "lb"),
		dialTimeout: cfg.DialTimeout,
		udpIdle:     cfg.UDPIdle,
		fes:         make(map[feKey]*frontend),
		active:      make(map[string]int),
	}
	if b.dialTimeout <= 0 {
		b.dialTimeout = defaultDialTimeout
	}
	if b.udpIdle <= 0 {
		b.udpIdle = defaultUDPIdle
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	return b
}

// feKey identifies a listening socket. HostIP is canonical ("" for every
// address), so "::0" and "::" are the same frontend.
type feKey struct {
	proto  string
	hostIP string
	port   uint16
}

func keyOf(f Frontend) (feKey, error) {
	k := feKey{proto: f.Proto, port: f.Port}
	if f.Proto != "tcp" && f.Proto != "udp" {
		return k, fmt.Errorf("protocol %q is not supported; use tcp or udp", f.Proto)
	}
	if f.Port == 0 {
		return k, errors.New("port 0 cannot be published")
	}
	if f.HostIP != "" {
		ip, err := netip.ParseAddr(f.HostIP)
		if err != nil {
			return k, fmt.Errorf("host IP %q is not an IP address", f.HostIP)
		}
		k.hostIP = ip.String()
	}
	return k, nil
}

// Sync makes the listeners exactly those of fes (opening new ones, closing the
// ones no longer listed) and replaces each frontend's backends. Connections
// already open are never cut by Sync: a backend that leaves the list only
// stops receiving NEW connections (this is how the mesh drains a stopping
// task). A TCP frontend that leaves the list stops accepting, but its open
// connections run on; a UDP frontend's sessions end with it, since their
// replies leave through its socket.
//
// It returns one *ListenError per frontend that could not listen (e.g.
// "publish 8080/tcp: address already in use"), and keeps trying those on the
// next Sync.
func (b *Balancer) Sync(fes []Frontend) []error {
	b.mu.Lock()
	defer b.mu.Unlock()

	var errs []error
	fail := func(f Frontend, err error) {
		errs = append(errs, &ListenError{Proto: f.Proto, HostIP: f.HostIP, Port: f.Port, Err: err})
	}
	if b.closed {
		for _, f := range fes {
			fail(f, ErrClosed)
		}
		return errs
	}

	want := make(map[feKey]Frontend, len(fes))
	order := make([]feKey, 0, len(fes))
	for _, f := range fes {
		k, err := keyOf(f)
		if err != nil {
			fail(f, err)
			continue
		}
		if _, dup := want[k]; dup {
			fail(f, errors.New("listed more than once"))
			continue
		}
		want[k] = f
		order = append(order, k)
	}

	// Close what is gone first, so a port that moves (say from one host IP
	// to every address) can be bound again in this same call.
	for k, fe := range b.fes {
		if _, ok := want[k]; !ok {
			fe.close()
			delete(b.fes, k)
			fe.log.Info("stopped listening")
		}
	}
	for _, k := range order {
		f := want[k]
		if fe, ok := b.fes[k]; ok {
			fe.setBackends(f.Backends)
			continue
		}
		fe, err := b.open(k, f.Backends)
		if err != nil {
			fail(f, err)
			b.log.Warn("cannot listen", "proto", k.proto, "host_ip", k.hostIP, "port", int(k.port), "err", err)
			continue
		}
		b.fes[k] = fe
		fe.log.Info("listening", "backends", len(f.Backends))
	}
	return errs
}

// open listens for one frontend and starts serving it. Called with b.mu held,
// which orders its wg.Add before Close's wg.Wait.
func (b *Balancer) open(k feKey, backends []Backend) (*frontend, error) {
	addr := net.JoinHostPort(k.hostIP, strconv.Itoa(int(k.port)))
	switch k.proto {
	case "tcp":
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, err
		}
		fe := b.newFrontend(k, backends)
		fe.ln = ln.(*net.TCPListener)
		b.wg.Add(1)
		go b.acceptTCP(fe)
		return fe, nil
	default: // "udp"
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, err
		}
		fe := b.newFrontend(k, backends)
		b.startUDP(fe, pc.(*net.UDPConn))
		return fe, nil
	}
}

func (b *Balancer) newFrontend(k feKey, backends []Backend) *frontend {
	fe := &frontend{
		key:  k,
		log:  b.log.With("proto", k.proto, "port", int(k.port)),
		done: make(chan struct{}),
	}
	if k.hostIP != "" {
		fe.log = fe.log.With("host_ip", k.hostIP)
	}
	fe.ctx, fe.cancel = context.WithCancel(b.ctx)
	fe.setBackends(backends)
	return fe
}

// startUDP serves fe on pc. Called with b.mu held.
func (b *Balancer) startUDP(fe *frontend, pc *net.UDPConn) {
	fe.pc = pc
	fe.pktinfo = enablePktinfo(pc)
	fe.sessions = make(map[netip.AddrPort]*udpSession)
	b.wg.Add(1)
	go b.serveUDP(fe)
}

// Active is the number of open proxied connections (TCP) and live sessions
// (UDP) per backend ID.
func (b *Balancer) Active() map[string]int {
	b.activeMu.Lock()
	defer b.activeMu.Unlock()
	m := make(map[string]int, len(b.active))
	for id, n := range b.active {
		m[id] = n
	}
	return m
}

func (b *Balancer) addActive(id string, delta int) {
	b.activeMu.Lock()
	defer b.activeMu.Unlock()
	n := b.active[id] + delta
	if n <= 0 {
		delete(b.active, id)
		return
	}
	b.active[id] = n
}

// Close closes the listeners and every proxied connection, and returns once
// every goroutine of the Balancer has ended.
func (b *Balancer) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.cancel()
	for k, fe := range b.fes {
		fe.close()
		delete(b.fes, k)
	}
	b.mu.Unlock()

	b.conns.closeAll()
	b.wg.Wait()
	return nil
}

// frontend is one listening socket and the backends it spreads over.
type frontend struct {
	key feKey
	log *slog.Logger
	ln  *net.TCPListener // tcp
	pc  *net.UDPConn     // udp

	// done is closed, and ctx canceled, when the frontend stops listening.
	done      chan struct{}
	ctx       context.Context
	cancel    context.CancelFunc
	closeOnce sync.Once

	pktinfo       int         // udp: address family whose PKTINFO is enabled, 0 if none
	pktinfoWarned atomic.Bool // udp: logged that the kernel refused a reply's PKTINFO

	lastNoBackendLog atomic.Int64 // unix nanos

	mu       sync.Mutex
	backends []Backend // replaced whole by setBackends, never changed in place
	next     int
	closed   bool
	sessions map[netip.AddrPort]*udpSession // udp
}

func (fe *frontend) setBackends(bs []Backend) {
	cp := append([]Backend(nil), bs...)
	fe.mu.Lock()
	fe.backends = cp
	fe.mu.Unlock()
}

// pick returns the backends in the order a new connection should try them:
// round robin over the frontend's list, then the rest as fallbacks.
func (fe *frontend) pick() (bs []Backend, start int) {
	fe.mu.Lock()
	defer fe.mu.Unlock()
	return fe.pickLocked()
}

func (fe *frontend) pickLocked() (bs []Backend, start int) {
	bs = fe.backends
	if len(bs) == 0 {
		return nil, 0
	}
	start = fe.next % len(bs)
	fe.next = (start + 1) % len(bs)
	return bs, start
}

func (fe *frontend) warnNoBackend() {
	now := time.Now().UnixNano()
	last := fe.lastNoBackendLog.Load()
	if now-last < int64(noBackendLogEvery) || !fe.lastNoBackendLog.CompareAndSwap(last, now) {
		return
	}
	fe.log.Warn("no backend available; dropping traffic")
}

// close stops listening. TCP connections already accepted run on (they
// belong to the Balancer); UDP sessions end, their conns closed here in case
// one is blocked writing to a slow tunnel.
func (fe *frontend) close() {
	fe.closeOnce.Do(func() {
		close(fe.done)
		fe.cancel()
		if fe.ln != nil {
			fe.ln.Close()
		}
		if fe.pc != nil {
			fe.pc.Close()
		}
		fe.mu.Lock()
		fe.closed = true
		for _, s := range fe.sessions {
			if s.conn != nil {
				s.conn.Close()
			}
		}
		fe.mu.Unlock()
	})
}

// connSet holds connections to close on shutdown.
type connSet struct {
	mu     sync.Mutex
	closed bool
	m      map[io.Closer]struct{}
}

// add registers c; it reports false, and the caller must close c itself,
// once closeAll has run.
func (s *connSet) add(c io.Closer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.m == nil {
		s.m = make(map[io.Closer]struct{})
	}
	s.m[c] = struct{}{}
	return true
}

func (s *connSet) remove(c io.Closer) {
	s.mu.Lock()
	delete(s.m, c)
	s.mu.Unlock()
}

func (s *connSet) closeAll() {
	s.mu.Lock()
	s.closed = true
	m := s.m
	s.m = nil
	s.mu.Unlock()
	for c := range m {
		c.Close()
	}
}

// backoff doubles d from 5ms up to 1s: the pause after an accept or read
// error that is not the socket closing (EMFILE, ENOBUFS), so it does not spin.
func backoff(d time.Duration) time.Duration {
	if d == 0 {
		return 5 * time.Millisecond
	}
	return min(2*d, time.Second)
}

// pauseAfter handles a failed accept or read of a frontend: false when the
// frontend is closed (stop), else true after waiting a growing delay (a
// transient error such as running out of file descriptors must not spin).
func pauseAfter(err error, delay *time.Duration, done <-chan struct{}, log *slog.Logger, what string) bool {
	if errors.Is(err, net.ErrClosed) {
		return false
	}
	*delay = backoff(*delay)
	log.Warn(what+" failed", "err", err, "retry_in", *delay)
	select {
	case <-done:
		return false
	case <-time.After(*delay):
		return true
	}
}
