package lb

import (
	"bufio"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"
)

// sessionQueue is how many datagrams a session holds while it connects to
// its backend or while the backend is slow; more are dropped, as a full
// socket buffer would.
const sessionQueue = 64

// udpSession is the traffic of one client address, relayed to one backend.
type udpSession struct {
	client netip.AddrPort
	oob    []byte // PKTINFO for replies, so they leave from the address the client wrote to; after creation only relayReplies touches it
	in     chan []byte
	start  time.Time
	last   atomic.Int64 // when traffic last passed, as nanoseconds since start

	conn udpBackend // set once connected; guarded by frontend.mu
}

func (s *udpSession) touch() { s.last.Store(int64(time.Since(s.start))) }

func (s *udpSession) idleFor() time.Duration {
	return time.Since(s.start) - time.Duration(s.last.Load())
}

// udpBackend is the client side of a session's backend: a connected UDP
// socket, or a tunnel stream carrying frames.
type udpBackend interface {
	send(p []byte) error
	recv(buf []byte) (int, error)
	Close() error
}

type directUDP struct{ net.Conn }

func (d directUDP) send(p []byte) error {
	_, err := d.Write(p)
	return err
}

func (d directUDP) recv(buf []byte) (int, error) { return d.Read(buf) }

type tunnelUDP struct {
	net.Conn
	br      *bufio.Reader
	scratch []byte // only the session's own goroutine sends
}

func (t *tunnelUDP) send(p []byte) error {
	var err error
	t.scratch, err = writeFrame(t.Conn, t.scratch, p)
	return err
}

func (t *tunnelUDP) recv(buf []byte) (int, error) { return readFrame(t.br, buf) }

// serveUDP reads the frontend's socket and hands each datagram to the
// session of its client address, starting one if there is none.
func (b *Balancer) serveUDP(fe *frontend) {
	defer b.wg.Done()
	buf := make([]byte, maxDatagram)
	oob := make([]byte, oobSize)
	var delay time.Duration
	for {
		n, oobn, _, from, err := fe.pc.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if !pauseAfter(err, &delay, fe.done, fe.log, "read") {
				return
			}
			continue
		}
		delay = 0
		s := b.session(fe, from, oob[:oobn])
		if s == nil {
			continue
		}
		p := make([]byte, n)
		copy(p, buf[:n])
		select {
		case s.in <- p:
		default:
			fe.log.Debug("session queue full; datagram dropped", "client", from.String())
		}
	}
}

// session returns the live session of client, or starts one with the next
// backend in round-robin order; nil if the frontend has no backend.
func (b *Balancer) session(fe *frontend, client netip.AddrPort, oob []byte) *udpSession {
	fe.mu.Lock()
	defer fe.mu.Unlock()
	if s := fe.sessions[client]; s != nil {
		return s
	}
	if fe.closed {
		return nil
	}
	bs, start := fe.pickLocked()
	if len(bs) == 0 {
		fe.warnNoBackend()
		return nil
	}
	s := &udpSession{
		client: client,
		in:     make(chan []byte, sessionQueue),
		start:  time.Now(),
	}
	if fe.pktinfo != 0 {
		s.oob = replyOOB(fe.pktinfo, oob)
	}
	fe.sessions[client] = s
	// serveUDP is counted in wg, so the Add cannot race Close's Wait.
	b.wg.Add(1)
	go b.runSession(fe, s, bs, start)
	return s
}

// runSession connects s to a backend and relays until the session is idle
// for UDPIdle, the backend goes away, or the frontend closes.
func (b *Balancer) runSession(fe *frontend, s *udpSession, bs []Backend, start int) {
	defer b.wg.Done()
	be, conn, ok := b.dialUDP(fe, bs, start)
	if !ok {
		b.endSession(fe, s)
		return
	}
	fe.mu.Lock()
	closed := fe.closed
	if !closed {
		s.conn = conn
	}
	fe.mu.Unlock()
	if closed {
		conn.Close()
		b.endSession(fe, s)
		return
	}

	b.addActive(be.ID, 1)
	log := fe.log.With("backend", be.ID, "client", s.client.String())
	log.Debug("session start", "addr", be.Addr, "via", be.Via)
	s.touch()

	replies := make(chan struct{})
	go func() {
		defer close(replies)
		b.relayReplies(fe, s, conn)
	}()

	idle := time.NewTimer(b.udpIdle)
	why := "idle"
loop:
	for {
		select {
		case p := <-s.in:
			s.touch()
			if err := conn.send(p); err != nil {
				why = "backend: " + reason(err)
				break loop
			}
		case <-idle.C:
			if d := s.idleFor(); d < b.udpIdle {
				idle.Reset(b.udpIdle - d)
				continue
			}
			break loop
		case <-replies:
			why = "backend closed"
			break loop
		case <-fe.done:
			why = "frontend closed"
			break loop
		}
	}
	idle.Stop()
	// Out of the map first: the client's next datagram starts a new session
	// instead of landing in this one's queue.
	b.endSession(fe, s)
	conn.Close()
	<-replies
	b.addActive(be.ID, -1)
	log.Debug("session end", "why", why)
}

func (b *Balancer) endSession(fe *frontend, s *udpSession) {
	fe.mu.Lock()
	if fe.sessions[s.client] == s {
		delete(fe.sessions, s.client)
	}
	fe.mu.Unlock()
}

// dialUDP connects to the session's backend, trying the others once each if
// that fails. A direct backend cannot fail here (UDP has no handshake); a
// dead one shows as ICMP refusal, which ends the session so the client's
// next datagram moves on.
func (b *Balancer) dialUDP(fe *frontend, bs []Backend, start int) (Backend, udpBackend, bool) {
	for i := range bs {
		be := bs[(start+i)%len(bs)]
		c, _, err := b.dialBackend(fe.ctx, "udp", be)
		if err == nil {
			if t, ok := c.(*tunnelUDP); ok {
				return be, t, true
			}
			return be, directUDP{c}, true
		}
		if fe.ctx.Err() != nil {
			return Backend{}, nil, false
		}
		fe.log.Warn("backend unreachable, trying the next", "backend", be.ID, "addr", be.Addr, "via", be.Via, "err", err)
	}
	fe.log.Warn("every backend failed; dropping the session", "backends", len(bs))
	return Backend{}, nil, false
}

// relayReplies sends the backend's datagrams to the client from the
// frontend's socket, until the backend conn fails or is closed.
func (b *Balancer) relayReplies(fe *frontend, s *udpSession, conn udpBackend) {
	buf := make([]byte, maxDatagram)
	for {
		n, err := conn.recv(buf)
		if err != nil {
			return
		}
		s.touch()
		if err := fe.reply(buf[:n], s); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			fe.log.Debug("reply to client failed", "client", s.client.String(), "err", err)
		}
	}
}

// reply sends p to the session's client. If the kernel refuses the PKTINFO
// that picks the source address (EINVAL: the address left the host, or a
// kernel without the option), the session replies without it from then on,
// from whatever address routing picks.
func (fe *frontend) reply(p []byte, s *udpSession) error {
	if s.oob != nil {
		_, _, err := fe.pc.WriteMsgUDPAddrPort(p, s.oob, s.client)
		if !errors.Is(err, syscall.EINVAL) {
			return err
		}
		s.oob = nil // only this session's reply goroutine reads it
		if fe.pktinfoWarned.CompareAndSwap(false, true) {
			fe.log.Warn("cannot choose the source address of UDP replies; replying without", "client", s.client.String(), "err", err)
		}
	}
	_, err := fe.pc.WriteToUDPAddrPort(p, s.client)
	return err
}
