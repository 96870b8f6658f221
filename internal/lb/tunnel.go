package lb

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

const (
	defaultHeaderTimeout = 5 * time.Second
	tunnelDialTimeout    = 3 * time.Second
)

// Tunnel serves other nodes' balancers: they connect over TCP and name the
// backend address they want; Allowed decides (the agent allows only the
// addresses of its own tasks that are backends of a published port, so the
// tunnel exposes nothing more than the published ports do). A nil Allowed
// refuses everything.
type Tunnel struct {
	Allowed func(proto, addr string) bool
	Logger  *slog.Logger

	headerTimeout time.Duration // 0: defaultHeaderTimeout; tests shorten it
}

// Serve accepts tunnel connections on ln until ln is closed; then it closes
// the connections it is still relaying and returns nil once they are done.
func (t *Tunnel) Serve(ln net.Listener) error {
	log := t.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "lb", "tunnel", ln.Addr().String())

	ctx, cancel := context.WithCancel(context.Background())
	var (
		conns connSet
		wg    sync.WaitGroup
	)
	defer func() {
		cancel()
		conns.closeAll()
		wg.Wait()
	}()

	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			delay = backoff(delay)
			log.Warn("accept failed", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.serveConn(ctx, &conns, c, log)
		}()
	}
}

func (t *Tunnel) serveConn(ctx context.Context, conns *connSet, c net.Conn, log *slog.Logger) {
	if !conns.add(c) {
		c.Close()
		return
	}
	defer func() {
		conns.remove(c)
		c.Close()
	}()
	log = log.With("peer", c.RemoteAddr().String())

	timeout := t.headerTimeout
	if timeout <= 0 {
		timeout = defaultHeaderTimeout
	}
	// The deadline covers the header, the backend dial and the reply.
	c.SetDeadline(time.Now().Add(timeout + tunnelDialTimeout))
	c.SetReadDeadline(time.Now().Add(timeout))
	br := bufio.NewReader(c)
	proto, ap, err := readHeader(br)
	if err != nil {
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			err = errors.New("no header within " + timeout.String())
		case errors.Is(err, io.EOF):
			return // the peer left without asking for anything
		}
		log.Warn("tunnel request refused", "err", err)
		io.WriteString(c, errReply(err.Error()))
		return
	}
	addr := ap.String()
	log = log.With("proto", proto, "backend", addr)
	if t.Allowed == nil || !t.Allowed(proto, addr) {
		log.Warn("tunnel request refused: address not allowed")
		io.WriteString(c, errReply("not allowed: "+proto+" "+addr+" is not a published backend on this node"))
		return
	}

	d := net.Dialer{Timeout: tunnelDialTimeout}
	backend, err := d.DialContext(ctx, proto, addr)
	if err != nil {
		log.Warn("tunnel backend unreachable", "err", err)
		io.WriteString(c, errReply("dial "+proto+" "+addr+": "+reason(err)))
		return
	}
	if !conns.add(backend) {
		backend.Close()
		return
	}
	defer func() {
		conns.remove(backend)
		backend.Close()
	}()
	if _, err := io.WriteString(c, "OK\n"); err != nil {
		return
	}
	c.SetDeadline(time.Time{})
	log.Debug("tunnel open")

	switch proto {
	case "tcp":
		// A client may send right behind its header; those bytes are in br.
		if n := br.Buffered(); n > 0 {
			early, _ := br.Peek(n)
			if _, err := backend.Write(early); err != nil {
				return
			}
		}
		pipe(c, backend)
	case "udp":
		relayFrames(c, br, backend)
	}
	log.Debug("tunnel closed")
}

// relayFrames relays between the frames of a tunnel stream and a connected
// UDP socket until either side ends. The balancer ends a session by closing
// the stream; a backend that refuses a datagram (ICMP port unreachable) ends
// it from this side, so the balancer's next datagram picks another backend.
func relayFrames(tun net.Conn, br *bufio.Reader, udp net.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, maxDatagram)
		var scratch []byte
		for {
			n, err := udp.Read(buf)
			if err != nil {
				break
			}
			if scratch, err = writeFrame(tun, scratch, buf[:n]); err != nil {
				break
			}
		}
		tun.Close()
	}()
	buf := make([]byte, maxDatagram)
	for {
		n, err := readFrame(br, buf)
		if err != nil {
			break
		}
		if _, err := udp.Write(buf[:n]); err != nil {
			break
		}
	}
	udp.Close()
	<-done
}
