package dns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
)

// ErrClosed is returned by Listen after Close.
var ErrClosed = errors.New("dns server closed")

const (
	defaultPort    = 53
	defaultTimeout = 2 * time.Second
	// shutdownWait bounds how long Unlisten waits for queries in flight;
	// the sockets are closed after it either way.
	shutdownWait = time.Second
)

// Config configures a Server.
type Config struct {
	Upstreams []string      // "ip:port" of the host's resolvers, used for names Drover does not know; see HostUpstreams
	Port      int           // port to listen on; 0 means 53
	Logger    *slog.Logger  // nil: discard
	Timeout   time.Duration // upstream timeout, 0: 2s
}

// Server answers DNS queries on the gateway address of each network it
// listens for. Its methods are safe for concurrent use.
type Server struct {
	upstreams []string
	port      int
	timeout   time.Duration
	log       *slog.Logger

	table   atomic.Pointer[table]
	setMu   sync.Mutex // serializes SetRecords, which reads the previous table
	clients atomic.Pointer[clientIndex]

	mu        sync.Mutex // guards listeners and closed
	listeners map[string]*listener
	closed    bool
	// bound mirrors listeners for the query path, which must not take mu.
	bound atomic.Pointer[boundAddrs]
}

// listener is the pair of sockets serving one network.
type listener struct {
	ip       net.IP
	udp, tcp *mdns.Server
}

// boundAddrs is a snapshot of where the Server listens.
type boundAddrs struct {
	gateways map[ipv4]struct{} // reverse lookups of gateways stay local
	addrs    map[string]struct{}
}

// NewServer returns a Server that listens nowhere yet and knows no names.
func NewServer(cfg Config) *Server {
	s := &Server{
		upstreams: append([]string(nil), cfg.Upstreams...),
		port:      cfg.Port,
		timeout:   cfg.Timeout,
		log:       cfg.Logger,
		listeners: map[string]*listener{},
	}
	if s.port == 0 {
		s.port = defaultPort
	}
	if s.timeout <= 0 {
		s.timeout = defaultTimeout
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s.log = s.log.With("component", "dns")
	s.table.Store(&table{nets: map[string]*netTable{}, own: map[ipv4]struct{}{}})
	s.bound.Store(&boundAddrs{gateways: map[ipv4]struct{}{}, addrs: map[string]struct{}{}})
	s.clients.Store(&clientIndex{})
	return s
}

// SetRecords replaces the whole table of names. Queries see either the old
// table or the new one, never a mix. Rotation of a name continues where it
// was if the name survives the update.
func (s *Server) SetRecords(recs []Record) {
	s.setMu.Lock()
	defer s.setMu.Unlock()
	t, skipped := buildTable(recs, s.table.Load())
	s.table.Store(t)
	for _, n := range skipped {
		s.log.Warn("ignoring invalid DNS name", "name", n)
	}
}

// SetClients replaces the set of containers on this host that use the
// Server, by which a query's source address widens what it can resolve to
// the networks of its container. A query from an address no client has
// resolves the names of the network it arrived on only.
func (s *Server) SetClients(cs []Client) {
	ix := buildClients(cs)
	s.clients.Store(&ix)
}

// Listen serves network on ip, over UDP and TCP on the configured port, and
// returns once both sockets are bound. Listening again with the same ip does
// nothing; with another ip the listeners move there (the old ones stay if
// the new ones cannot be opened).
func (s *Server) Listen(network string, ip net.IP) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	old := s.listeners[network]
	if old != nil && old.ip.Equal(ip) {
		return nil
	}
	l, err := s.start(network, ip)
	if err != nil {
		return err
	}
	if old != nil {
		old.stop()
	}
	s.listeners[network] = l
	s.updateBound()
	s.log.Info("serving DNS", "network", network, "addr", s.addr(ip))
	return nil
}

// Unlisten stops serving network. Queries in flight are given a moment to
// finish; the sockets are closed when it returns.
func (s *Server) Unlisten(network string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.listeners[network]
	if l == nil {
		return
	}
	delete(s.listeners, network)
	s.updateBound()
	l.stop()
	s.log.Info("stopped serving DNS", "network", network, "addr", s.addr(l.ip))
}

// Close stops every listener. The Server cannot listen again afterwards.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var wg sync.WaitGroup
	for network, l := range s.listeners {
		delete(s.listeners, network)
		wg.Go(l.stop)
	}
	wg.Wait()
	s.updateBound()
	return nil
}

func (s *Server) addr(ip net.IP) string {
	return net.JoinHostPort(ip.String(), strconv.Itoa(s.port))
}

// updateBound publishes the listeners' addresses; call with mu held.
func (s *Server) updateBound() {
	b := &boundAddrs{gateways: map[ipv4]struct{}{}, addrs: map[string]struct{}{}}
	for _, l := range s.listeners {
		if v4, ok := toIPv4(l.ip); ok {
			b.gateways[v4] = struct{}{}
		}
		b.addrs[s.addr(l.ip)] = struct{}{}
	}
	s.bound.Store(b)
}

func (s *Server) isGateway(ip ipv4) bool {
	_, ok := s.bound.Load().gateways[ip]
	return ok
}

// start opens and serves the sockets of one listener.
func (s *Server) start(network string, ip net.IP) (*listener, error) {
	if ip == nil || ip.IsUnspecified() {
		return nil, fmt.Errorf("dns: listen for network %q: need a gateway address, got %v", network, ip)
	}
	addr := s.addr(ip)
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("dns: listen for network %q: %w", network, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("dns: listen for network %q: %w", network, err)
	}
	l := &listener{
		ip: append(net.IP(nil), ip...),
		udp: &mdns.Server{
			PacketConn: pc,
			Handler:    &handler{s: s, network: network, udp: true},
			UDPSize:    mdns.DefaultMsgSize,
		},
		tcp: &mdns.Server{
			Listener: ln,
			Handler:  &handler{s: s, network: network},
		},
	}
	udpErr := s.serve(l.udp, network, "udp")
	if udpErr != nil {
		pc.Close()
		ln.Close()
		return nil, fmt.Errorf("dns: serve udp for network %q on %s: %w", network, addr, udpErr)
	}
	if err := s.serve(l.tcp, network, "tcp"); err != nil {
		shutdown(l.udp)
		ln.Close()
		return nil, fmt.Errorf("dns: serve tcp for network %q on %s: %w", network, addr, err)
	}
	return l, nil
}

// serve runs srv in the background and waits until it is serving, so that a
// later shutdown cannot race with the start (miekg/dns refuses to shut down
// a server that has not started yet).
func (s *Server) serve(srv *mdns.Server, network, proto string) error {
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	done := make(chan error, 1)
	go func() {
		err := srv.ActivateAndServe()
		if err != nil {
			s.log.Error("DNS listener failed", "network", network, "proto", proto, "err", err)
		}
		done <- err
	}()
	select {
	case <-started:
		return nil
	case err := <-done:
		if err == nil {
			err = errors.New("stopped before serving")
		}
		return err
	}
}

func (l *listener) stop() {
	var wg sync.WaitGroup
	wg.Go(func() { shutdown(l.udp) })
	wg.Go(func() { shutdown(l.tcp) })
	wg.Wait()
}

func shutdown(srv *mdns.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownWait)
	defer cancel()
	_ = srv.ShutdownContext(ctx)
	// Close even when queries are still in flight, so the address can be
	// bound again at once.
	if srv.PacketConn != nil {
		srv.PacketConn.Close()
	}
	if srv.Listener != nil {
		srv.Listener.Close()
	}
}
