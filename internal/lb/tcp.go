package lb

import (
	"context"
	"io"
	"net"
	"time"
)

func (b *Balancer) acceptTCP(fe *frontend) {
	defer b.wg.Done()
	var delay time.Duration
	for {
		c, err := fe.ln.AcceptTCP()
		if err != nil {
			if !pauseAfter(err, &delay, fe.done, fe.log, "accept") {
				return
			}
			continue
		}
		delay = 0
		// This goroutine is counted in wg, so the Add cannot race Close's Wait.
		b.wg.Add(1)
		go b.proxyTCP(fe, c)
	}
}

// proxyTCP serves one accepted connection until both directions are done.
// It does not watch its frontend: a Sync that removes the frontend or the
// backend leaves it running; only Close cuts it.
func (b *Balancer) proxyTCP(fe *frontend, client *net.TCPConn) {
	defer b.wg.Done()
	if !b.conns.add(client) {
		client.Close()
		return
	}
	defer func() {
		b.conns.remove(client)
		client.Close()
	}()

	be, backend, early, ok := b.dialTCP(fe)
	if !ok {
		return
	}
	if !b.conns.add(backend) {
		backend.Close()
		return
	}
	defer func() {
		b.conns.remove(backend)
		backend.Close()
	}()

	b.addActive(be.ID, 1)
	defer b.addActive(be.ID, -1)
	log := fe.log.With("backend", be.ID)
	log.Debug("connection open", "client", client.RemoteAddr().String(), "addr", be.Addr, "via", be.Via)

	// Bytes the backend sent right behind the tunnel's "OK" line.
	if len(early) > 0 {
		if _, err := client.Write(early); err != nil {
			return
		}
	}
	pipe(client, backend)
	log.Debug("connection closed", "client", client.RemoteAddr().String())
}

// dialTCP connects to the frontend's next backend in round-robin order,
// trying each of the others at most once if it fails.
func (b *Balancer) dialTCP(fe *frontend) (Backend, net.Conn, []byte, bool) {
	bs, start := fe.pick()
	if len(bs) == 0 {
		fe.warnNoBackend()
		return Backend{}, nil, nil, false
	}
	for i := range bs {
		be := bs[(start+i)%len(bs)]
		c, early, err := b.dialBackend(b.ctx, "tcp", be)
		if err == nil {
			return be, c, early, true
		}
		if b.ctx.Err() != nil {
			return Backend{}, nil, nil, false
		}
		fe.log.Warn("backend unreachable, trying the next", "backend", be.ID, "addr", be.Addr, "via", be.Via, "err", err)
	}
	fe.log.Warn("every backend failed; closing the client connection", "backends", len(bs))
	return Backend{}, nil, nil, false
}

// dialBackend connects to be directly or through its node's tunnel. For a
// tunnel it also returns the bytes already read past the tunnel's reply.
func (b *Balancer) dialBackend(ctx context.Context, proto string, be Backend) (net.Conn, []byte, error) {
	if be.Via == "" {
		d := net.Dialer{Timeout: b.dialTimeout}
		c, err := d.DialContext(ctx, proto, be.Addr)
		return c, nil, err
	}
	c, br, err := dialTunnel(ctx, b.dialTimeout, be.Via, proto, be.Addr)
	if err != nil {
		return nil, nil, err
	}
	if proto == "udp" {
		// The frames are read through br; the caller wraps it.
		return &tunnelUDP{Conn: c, br: br}, nil, nil
	}
	var early []byte
	if n := br.Buffered(); n > 0 {
		early, _ = br.Peek(n)
	}
	return c, early, nil
}

// pipe copies a to b and b to a until both directions are done. A direction
// that ends cleanly (EOF) half-closes its destination with CloseWrite, so a
// protocol that shuts down one direction still gets the other's reply; an
// error in either direction tears both down.
//
// Given two *net.TCPConn, io.Copy goes through (*TCPConn).ReadFrom, which
// splices on Linux: the bytes never enter user space.
func pipe(a, b net.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		copyHalf(b, a)
	}()
	copyHalf(a, b)
	<-done
}

func copyHalf(dst, src net.Conn) {
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		src.Close()
		return
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	dst.Close()
}
