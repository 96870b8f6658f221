package lb

import (
	"encoding/binary"
	"net"
	"net/netip"
	"syscall"
)

// A UDP frontend listening on every address must answer from the address
// the client wrote to, or a client on a host with several addresses drops
// the reply as coming from a stranger. The kernel tells which address that
// was with IP_PKTINFO / IPV6_PKTINFO on each datagram read, and takes the
// same option on a write to pick the source.

// oobSize holds one in6_pktinfo control message (the larger), with room.
var oobSize = syscall.CmsgSpace(20) * 2

// enablePktinfo asks for PKTINFO on c and returns the socket's address
// family, or 0 if the option could not be set.
func enablePktinfo(c *net.UDPConn) int {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	family := 0
	rc.Control(func(fd uintptr) {
		dom, err := syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_DOMAIN)
		if err != nil {
			return
		}
		switch dom {
		case syscall.AF_INET:
			err = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_PKTINFO, 1)
		case syscall.AF_INET6:
			// On a dual-stack socket this also covers IPv4 datagrams, whose
			// address comes as an IPv4-mapped IPv6 one.
			err = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_RECVPKTINFO, 1)
		default:
			return
		}
		if err == nil {
			family = dom
		}
	})
	return family
}

// replyOOB turns the control messages read with a datagram into the one to
// write with its replies, or nil if there is nothing usable.
func replyOOB(family int, oob []byte) []byte {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	for _, m := range msgs {
		switch {
		case family == syscall.AF_INET && m.Header.Level == syscall.IPPROTO_IP &&
			m.Header.Type == syscall.IP_PKTINFO && len(m.Data) >= 12:
			// struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }.
			// spec_dst is the local address; ifindex 0 leaves the interface
			// to routing.
			data := make([]byte, 12)
			copy(data[4:8], m.Data[4:8])
			return cmsg(syscall.IPPROTO_IP, syscall.IP_PKTINFO, data)
		case family == syscall.AF_INET6 && m.Header.Level == syscall.IPPROTO_IPV6 &&
			m.Header.Type == syscall.IPV6_PKTINFO && len(m.Data) >= 20:
			// struct in6_pktinfo { in6_addr addr; int ifindex; }. A datagram
			// sent to a group cannot be answered from the group.
			dst := netip.AddrFrom16([16]byte(m.Data[:16]))
			if dst.IsMulticast() || dst.Unmap().IsMulticast() {
				return nil
			}
			data := make([]byte, 20)
			copy(data[:16], m.Data[:16])
			return cmsg(syscall.IPPROTO_IPV6, syscall.IPV6_PKTINFO, data)
		}
	}
	return nil
}

// cmsg encodes one control message in the host's layout.
func cmsg(level, typ int, data []byte) []byte {
	h := syscall.Cmsghdr{Level: int32(level), Type: int32(typ)}
	h.SetLen(syscall.CmsgLen(len(data)))
	b, err := binary.Append(make([]byte, 0, syscall.CmsgSpace(len(data))), binary.NativeEndian, h)
	if err != nil || len(b) != syscall.CmsgLen(0) {
		return nil
	}
	b = append(b, data...)
	return b[:syscall.CmsgSpace(len(data))]
}
