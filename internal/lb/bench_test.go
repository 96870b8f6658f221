package lb

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

// BenchmarkTCPThroughput sends a stream to one backend three ways in the
// same run: directly, through the balancer (spliced both hops), and through
// the balancer and a tunnel, as traffic for a task on another node goes.
// Compare their MB/s:
//
//	go test -run XXX -bench TCPThroughput ./internal/lb/
func BenchmarkTCPThroughput(b *testing.B) {
	// The sink reads until EOF, then says how much it got, so a run is timed
	// until the last byte has arrived, not just left the sender's buffer.
	sink := tcpServer(b, func(c *net.TCPConn) {
		buf := make([]byte, 256<<10)
		var total uint64
		for {
			n, err := c.Read(buf)
			total += uint64(n)
			if err == io.EOF {
				break
			}
			if err != nil {
				return
			}
		}
		binary.Write(c, binary.BigEndian, total)
	})
	tun := startTunnel(b, &Tunnel{Allowed: allow("tcp " + sink), Logger: nopLogger()})
	bal := New(Config{Logger: nopLogger()})
	b.Cleanup(func() { bal.Close() })
	direct, tunneled := freePort(b, "tcp"), freePort(b, "tcp")
	mustSync(b, bal,
		tcpFrontend(direct, Backend{ID: "sink", Addr: sink}),
		tcpFrontend(tunneled, Backend{ID: "sink", Addr: sink, Via: tun}),
	)

	for _, bm := range []struct{ name, addr string }{
		{"direct", sink},
		{"balancer", hostPort(direct)},
		{"balancer+tunnel", hostPort(tunneled)},
	} {
		b.Run(bm.name, func(b *testing.B) {
			chunk := make([]byte, 64<<10)
			c, err := net.DialTimeout("tcp", bm.addr, ioTimeout)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			b.SetBytes(int64(len(chunk)))
			b.ResetTimer()
			for range b.N {
				if _, err := c.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			c.(*net.TCPConn).CloseWrite()
			c.SetReadDeadline(time.Now().Add(time.Minute))
			var got uint64
			if err := binary.Read(c, binary.BigEndian, &got); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if want := uint64(b.N) * uint64(len(chunk)); got != want {
				b.Fatalf("sink got %d bytes, want %d", got, want)
			}
		})
	}
}
