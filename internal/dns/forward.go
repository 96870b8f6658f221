package dns

import (
	mdns "github.com/miekg/dns"
)

// forward asks the upstreams, in turn, for a name Drover does not know and
// returns the first usable answer with its rcode, or SERVFAIL.
func (s *Server) forward(network string, req *mdns.Msg) *mdns.Msg {
	bound := s.bound.Load()
	for _, up := range s.upstreams {
		if _, self := bound.addrs[up]; self {
			// A host whose resolv.conf names one of our gateways would loop.
			continue
		}
		r, err := s.exchange(req, up)
		if err != nil {
			s.log.Debug("upstream failed", "network", network, "upstream", up, "name", req.Question[0].Name, "err", err)
			continue
		}
		switch r.Rcode {
		case mdns.RcodeServerFailure, mdns.RcodeRefused, mdns.RcodeNotImplemented:
			// This upstream cannot help; another one may (as glibc's resolver does).
			s.log.Debug("upstream refused", "network", network, "upstream", up, "name", req.Question[0].Name, "rcode", mdns.RcodeToString[r.Rcode])
			continue
		}
		r.Id = req.Id
		r.Question = req.Question // echo the client's spelling
		return r
	}
	resp := new(mdns.Msg)
	resp.SetRcode(req, mdns.RcodeServerFailure)
	return resp
}

// exchange sends one query to one upstream over UDP, and again over TCP if
// the answer was truncated.
func (s *Server) exchange(req *mdns.Msg, upstream string) (*mdns.Msg, error) {
	q := req.Copy()
	q.Id = mdns.Id() // the client's id is not ours to reuse towards the upstream
	c := &mdns.Client{Net: "udp", Timeout: s.timeout}
	r, _, err := c.Exchange(q, upstream)
	if err == nil && r.Truncated {
		c.Net = "tcp"
		r, _, err = c.Exchange(q, upstream)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}
