package dns

import (
	"net"
	"testing"

	mdns "github.com/miekg/dns"
)

// recordingWriter is a ResponseWriter that keeps what the handler writes.
type recordingWriter struct {
	udp bool
	msg *mdns.Msg
}

func (w *recordingWriter) LocalAddr() net.Addr {
	if w.udp {
		return &net.UDPAddr{IP: net.IPv4(10, 1, 0, 1), Port: 53}
	}
	return &net.TCPAddr{IP: net.IPv4(10, 1, 0, 1), Port: 53}
}

func (w *recordingWriter) RemoteAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(10, 1, 0, 11), Port: 40000}
}
func (w *recordingWriter) WriteMsg(m *mdns.Msg) error { w.msg = m; return nil }
func (w *recordingWriter) Write(b []byte) (int, error) {
	m := new(mdns.Msg)
	if err := m.Unpack(b); err != nil {
		return 0, err
	}
	w.msg = m
	return len(b), nil
}
func (w *recordingWriter) Close() error        { return nil }
func (w *recordingWriter) TsigStatus() error   { return nil }
func (w *recordingWriter) TsigTimersOnly(bool) {}
func (w *recordingWriter) Hijack()             {}

func packQuery(f *testing.F, name string, qtype uint16, edns uint16) []byte {
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	if edns > 0 {
		m.SetEdns0(edns, true)
	}
	b, err := m.Pack()
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzHandle feeds raw bytes, as they would arrive on a listener, through
// unpacking and the handler. It must never panic, and every reply must pack
// and fit the client's buffer. Unknown names are answered without network
// access: the server has no upstreams.
func FuzzHandle(f *testing.F) {
	f.Add(packQuery(f, "web.", mdns.TypeA, 0))
	f.Add(packQuery(f, "TASKS.WEB.", mdns.TypeA, 0))
	f.Add(packQuery(f, "www.", mdns.TypeANY, 4096))
	f.Add(packQuery(f, "web.", mdns.TypeAAAA, 0))
	f.Add(packQuery(f, "big.", mdns.TypeA, 0))
	f.Add(packQuery(f, "big.", mdns.TypeA, 1232))
	f.Add(packQuery(f, "11.0.1.10.in-addr.arpa.", mdns.TypePTR, 0))
	f.Add(packQuery(f, "11.0.2.10.in-addr.arpa.", mdns.TypePTR, 0))
	f.Add(packQuery(f, "example.com.", mdns.TypeMX, 512))
	f.Add([]byte{})
	f.Add([]byte{0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc0, 0x0c})

	s := NewServer(Config{})
	recs := testRecords()
	for i := range 60 {
		recs = append(recs, Record{Network: "hello_default", Service: "big", IP: net.IPv4(10, 1, 1, byte(i))})
	}
	s.SetRecords(recs)

	f.Fuzz(func(t *testing.T, data []byte) {
		req := new(mdns.Msg)
		if err := req.Unpack(data); err != nil {
			return // the server answers FORMERR itself, before the handler
		}
		for _, udp := range []bool{true, false} {
			w := &recordingWriter{udp: udp}
			h := &handler{s: s, network: "hello_default", udp: udp}
			h.ServeDNS(w, req.Copy())
			if w.msg == nil {
				if !req.Response {
					t.Fatalf("no reply to a query: %v", req)
				}
				continue
			}
			b, err := w.msg.Pack()
			if err != nil {
				t.Fatalf("reply does not pack: %v\n%v", err, w.msg)
			}
			limit := mdns.MaxMsgSize
			if udp {
				limit = mdns.MinMsgSize
				if opt := req.IsEdns0(); opt != nil {
					limit = max(limit, int(opt.UDPSize()))
				}
			}
			if len(b) > limit {
				t.Fatalf("reply of %d bytes over a limit of %d (udp %v)", len(b), limit, udp)
			}
			if w.msg.Id != req.Id || !w.msg.Response || !w.msg.RecursionAvailable {
				t.Fatalf("bad reply header: %v", w.msg.MsgHdr)
			}
		}
	})
}
