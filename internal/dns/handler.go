package dns

import (
	"net"

	mdns "github.com/miekg/dns"
)

// advertisedUDPSize is the EDNS0 buffer size Drover's own answers advertise,
// the size the DNS flag day 2020 settled on to avoid fragmentation.
const advertisedUDPSize = 1232

// handler serves the queries arriving on one network's socket.
type handler struct {
	s       *Server
	network string
	udp     bool
}

func (h *handler) ServeDNS(w mdns.ResponseWriter, req *mdns.Msg) {
	resp := h.s.respond(h.network, sourceIP(w.RemoteAddr()), req, h.udp)
	if resp == nil {
		return
	}
	if err := w.WriteMsg(resp); err != nil {
		h.s.log.Debug("writing DNS reply", "network", h.network, "remote", w.RemoteAddr(), "err", err)
	}
}

// sourceIP is the address a query came from, nil if unknown.
func sourceIP(a net.Addr) net.IP {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.IP
	case *net.TCPAddr:
		return a.IP
	}
	return nil
}

// respond builds the reply to req as received on network's listener from
// src, over UDP if udp is set (which limits its size) or TCP. It returns
// nil when req must get no reply at all.
func (s *Server) respond(network string, src net.IP, req *mdns.Msg, udp bool) *mdns.Msg {
	resp := new(mdns.Msg)
	switch {
	case req.Response:
		// Never answer an answer: that is how reflection loops start. miekg/dns
		// drops these before the handler already.
		return nil
	case req.Opcode != mdns.OpcodeQuery:
		resp.SetRcode(req, mdns.RcodeNotImplemented)
	case len(req.Question) != 1:
		resp.SetRcodeFormatError(req)
	default:
		q := req.Question[0]
		if answers, rcode, ok := s.lookup(s.clients.Load().view(network, src), q); ok {
			resp.SetReply(req)
			resp.Authoritative = true
			resp.Rcode = rcode
			resp.Answer = answers
		} else {
			resp = s.forward(network, req)
		}
	}
	resp.RecursionAvailable = true

	size := mdns.MaxMsgSize
	if udp {
		size = mdns.MinMsgSize
	}
	if opt := req.IsEdns0(); opt != nil {
		if resp.IsEdns0() == nil {
			resp.SetEdns0(advertisedUDPSize, false)
		}
		if udp {
			size = max(size, int(opt.UDPSize()))
		}
	}
	resp.Truncate(size)
	// Truncate turns compression off when the message fits without it;
	// compressed is never larger, and clients are used to it.
	resp.Compress = true
	return resp
}
