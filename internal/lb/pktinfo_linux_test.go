package lb

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
)

func TestReplyOOB(t *testing.T) {
	// What the kernel hands over with a datagram to [::ffff:127.0.0.1] on a
	// dual-stack socket, then the reply's control message built from it.
	in := make([]byte, 20)
	copy(in, netip.MustParseAddr("::ffff:127.0.0.1").AsSlice())
	in[16] = 1 // ifindex 1
	got := replyOOB(syscall.AF_INET6, cmsg(syscall.IPPROTO_IPV6, syscall.IPV6_PKTINFO, in))
	msgs, err := syscall.ParseSocketControlMessage(got)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("reply control message %x: %v, %d messages", got, err, len(msgs))
	}
	m := msgs[0]
	if m.Header.Level != syscall.IPPROTO_IPV6 || m.Header.Type != syscall.IPV6_PKTINFO || len(m.Data) != 20 {
		t.Fatalf("reply control message: %+v", m.Header)
	}
	if !bytes.Equal(m.Data[:16], in[:16]) || !bytes.Equal(m.Data[16:], make([]byte, 4)) {
		t.Errorf("in6_pktinfo: got %x, want the address of %x and ifindex 0", m.Data, in)
	}

	// Multicast destinations get no source address; nor does the wrong family.
	copy(in, netip.MustParseAddr("ff02::fb").AsSlice())
	if got := replyOOB(syscall.AF_INET6, cmsg(syscall.IPPROTO_IPV6, syscall.IPV6_PKTINFO, in)); got != nil {
		t.Errorf("multicast: got %x, want nil", got)
	}
	if got := replyOOB(syscall.AF_INET, cmsg(syscall.IPPROTO_IPV6, syscall.IPV6_PKTINFO, in)); got != nil {
		t.Errorf("IPv6 message on an IPv4 socket: got %x, want nil", got)
	}
	if got := replyOOB(syscall.AF_INET, []byte{1, 2, 3}); got != nil {
		t.Errorf("garbage: got %x, want nil", got)
	}
}

// TestUDPDualStackReplies covers what a frontend on every address ("")
// does with an IPv4 client: its socket is AF_INET6 with IPV6_V6ONLY off, the
// client shows up as ::ffff:a.b.c.d, and replies carry an IPV6_PKTINFO with
// an IPv4-mapped source. A socket bound to ::ffff:127.0.0.1 takes that path
// without listening beyond 127.0.0.1.
func TestUDPDualStackReplies(t *testing.T) {
	leakCheck(t)
	port := freePort(t, "udp")
	fd, err := syscall.Socket(syscall.AF_INET6, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "dual-stack udp")
	defer f.Close()
	if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY, 0); err != nil {
		t.Fatal(err)
	}
	sa := &syscall.SockaddrInet6{Port: int(port), Addr: netip.MustParseAddr("::ffff:" + loopback).As16()}
	if err := syscall.Bind(fd, sa); err != nil {
		t.Fatal(err)
	}
	c, err := net.FilePacketConn(f)
	if err != nil {
		t.Fatal(err)
	}

	b := newBalancer(t, Config{})
	k := feKey{proto: "udp", hostIP: "::ffff:" + loopback, port: port}
	fe := b.newFrontend(k, []Backend{{ID: "a", Addr: udpServer(t, "a")}})
	b.mu.Lock()
	b.startUDP(fe, c.(*net.UDPConn))
	b.fes[k] = fe
	b.mu.Unlock()
	if fe.pktinfo != syscall.AF_INET6 {
		t.Fatalf("PKTINFO family %d, want AF_INET6", fe.pktinfo)
	}

	client := newUDPClient(t, port) // checks that replies come from 127.0.0.1:port
	for i := range 3 {
		if got := client.ask("hi"); got != "a:hi" {
			t.Errorf("reply %d: got %q, want a:hi", i, got)
		}
	}
	if fe.pktinfoWarned.Load() {
		t.Error("the kernel refused the IPv4-mapped IPV6_PKTINFO")
	}
	if !repliesUsePktinfo(fe) {
		t.Error("the session replies without PKTINFO")
	}
}
