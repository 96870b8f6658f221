package lb

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"
)

// The tunnel protocol; doc.go describes it for humans.
const (
	tunnelVersion = "DRV1"
	// maxHeaderLen bounds the request line, newline included. The longest
	// valid one, "DRV1 udp [ffff:...:ffff]:65535\n", is 55 bytes.
	maxHeaderLen = 128
	// maxReplyLen bounds the reply line; reasons are cut to fit.
	maxReplyLen = 256
	// maxDatagram is the largest UDP payload, and the largest frame.
	maxDatagram = 65535
)

var (
	errLineTooLong = errors.New("line too long")
	errBadReply    = errors.New("malformed reply")
)

// formatHeader is the request line a balancer sends to a tunnel.
func formatHeader(proto, addr string) string {
	return tunnelVersion + " " + proto + " " + addr + "\n"
}

// parseHeader parses a request line without its newline:
// "DRV1 <tcp|udp> <ip>:<port>". The address must be an IP literal (the
// tunnel resolves no names), with a port, no zone, and unicast.
func parseHeader(line string) (proto string, addr netip.AddrPort, err error) {
	rest, ok := strings.CutPrefix(line, tunnelVersion+" ")
	if !ok {
		return "", netip.AddrPort{}, errors.New(`bad header: want "` + tunnelVersion + ` <tcp|udp> <ip:port>"`)
	}
	proto, a, ok := strings.Cut(rest, " ")
	if !ok {
		return "", netip.AddrPort{}, errors.New("bad header: missing address")
	}
	if proto != "tcp" && proto != "udp" {
		return "", netip.AddrPort{}, fmt.Errorf("bad header: protocol %q is not tcp or udp", proto)
	}
	addr, err = netip.ParseAddrPort(a)
	if err != nil {
		return "", netip.AddrPort{}, fmt.Errorf("bad header: address %q is not ip:port", a)
	}
	ip := addr.Addr()
	switch {
	case addr.Port() == 0:
		return "", netip.AddrPort{}, errors.New("bad header: port 0")
	case ip.Zone() != "":
		return "", netip.AddrPort{}, errors.New("bad header: address has a zone")
	case ip.IsUnspecified(), ip.IsMulticast():
		return "", netip.AddrPort{}, fmt.Errorf("bad header: %s is not a unicast address", ip)
	}
	return proto, addr, nil
}

// readLine reads up to and excluding '\n', refusing a line longer than max
// bytes, newline included. It reads through br, so the bytes behind the line
// stay buffered for the caller.
func readLine(br *bufio.Reader, max int) (string, error) {
	var line []byte
	for {
		c, err := br.ReadByte()
		if err != nil {
			if err == io.EOF && len(line) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		if c == '\n' {
			return string(line), nil
		}
		if len(line) == max-1 { // no room left for the newline
			return "", errLineTooLong
		}
		line = append(line, c)
	}
}

// readHeader reads and parses a request line.
func readHeader(br *bufio.Reader) (proto string, addr netip.AddrPort, err error) {
	line, err := readLine(br, maxHeaderLen)
	if err != nil {
		if errors.Is(err, errLineTooLong) {
			return "", netip.AddrPort{}, fmt.Errorf("bad header: longer than %d bytes", maxHeaderLen)
		}
		return "", netip.AddrPort{}, err
	}
	return parseHeader(line)
}

// errReply is the ERR line for reason, kept to one line of bounded length
// whatever the reason holds.
func errReply(reason string) string {
	b := []byte("ERR ")
	for i := 0; i < len(reason) && len(b) < maxReplyLen-1; i++ {
		c := reason[i]
		if c < 0x20 || c == 0x7f {
			c = ' '
		}
		b = append(b, c)
	}
	return string(append(b, '\n'))
}

// dialTunnel connects to the tunnel at via and asks it for proto addr. The
// whole exchange, connect and reply, is bounded by timeout; ctx aborts it.
// On success the stream (tcp) or the frames (udp) follow through br.
func dialTunnel(ctx context.Context, timeout time.Duration, via, proto, addr string) (net.Conn, *bufio.Reader, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", via)
	if err != nil {
		return nil, nil, fmt.Errorf("tunnel %s: %w", via, err)
	}
	fail := func(err error) (net.Conn, *bufio.Reader, error) {
		c.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, nil, fmt.Errorf("tunnel %s: %s %s: %w", via, proto, addr, err)
	}

	deadline, _ := ctx.Deadline()
	c.SetDeadline(deadline)
	// Close (via ctx) must not wait for the deadline.
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if _, err := io.WriteString(c, formatHeader(proto, addr)); err != nil {
		return fail(err)
	}
	br := bufio.NewReader(c)
	line, err := readLine(br, maxReplyLen)
	if err != nil {
		if errors.Is(err, errLineTooLong) {
			err = errBadReply
		}
		return fail(err)
	}
	if !stop() {
		return fail(context.Canceled)
	}
	switch {
	case line == "OK":
		c.SetDeadline(time.Time{})
		return c, br, nil
	case strings.HasPrefix(line, "ERR "):
		return fail(&refusedError{reason: strings.TrimPrefix(line, "ERR ")})
	default:
		return fail(errBadReply)
	}
}

// refusedError is a tunnel's refusal, with the reason it gave.
type refusedError struct {
	reason string
}

func (e *refusedError) Error() string { return "refused: " + e.reason }

// Frames carry datagrams over a tunnel's TCP stream: a 2-byte big-endian
// length, then that many bytes (0 to 65535).

// readFrame reads one frame into buf, which must hold maxDatagram bytes.
func readFrame(r io.Reader, buf []byte) (int, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, err
	}
	n := int(binary.BigEndian.Uint16(h[:]))
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	return n, nil
}

// writeFrame writes the frame for p in one Write, using scratch (grown as
// needed) so concurrent writers could never interleave; it returns scratch.
func writeFrame(w io.Writer, scratch, p []byte) ([]byte, error) {
	if len(p) > maxDatagram {
		return scratch, fmt.Errorf("datagram of %d bytes exceeds %d", len(p), maxDatagram)
	}
	scratch = binary.BigEndian.AppendUint16(scratch[:0], uint16(len(p)))
	scratch = append(scratch, p...)
	_, err := w.Write(scratch)
	return scratch, err
}
