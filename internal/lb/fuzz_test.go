package lb

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

// FuzzReadHeader feeds arbitrary bytes to the tunnel's request parser: it
// must not panic, must read no more than maxHeaderLen bytes, must accept only
// headers that format back to themselves, and must turn every refusal into
// one bounded ERR line.
func FuzzReadHeader(f *testing.F) {
	for _, seed := range []string{
		"DRV1 tcp 10.1.2.3:80\n",
		"DRV1 udp [fd00::1]:53\npayload",
		"DRV1 tcp [::ffff:10.0.0.1]:443\n",
		"DRV1 tcp [fe80::1%eth0]:80\n",
		"DRV1 tcp 0.0.0.0:80\n",
		"DRV1 tcp 224.0.0.1:80\n",
		"DRV1  tcp 10.1.2.3:80\n",
		"DRV1 tcp 10.1.2.3:80 \n",
		"DRV1 tcp 10.1.2.3:99999\n",
		"DRV1 tcp\x00 1.2.3.4:5\n",
		"DRV2 tcp 10.1.2.3:80\n",
		"GET / HTTP/1.1\r\n",
		"",
		"\n",
		strings.Repeat("A", 300),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		proto, addr, err := readHeader(bufio.NewReader(&shortReader{r: r}))
		if err != nil {
			reply := errReply(err.Error())
			if !strings.HasPrefix(reply, "ERR ") || strings.Count(reply, "\n") != 1 ||
				!strings.HasSuffix(reply, "\n") || len(reply) > maxReplyLen {
				t.Fatalf("refusal %q makes a bad reply line %q", err, reply)
			}
			return
		}
		line, _, _ := bytes.Cut(data, []byte("\n"))
		if len(line)+1 > maxHeaderLen {
			t.Fatalf("accepted a %d-byte header", len(line)+1)
		}
		if proto != "tcp" && proto != "udp" {
			t.Fatalf("accepted protocol %q", proto)
		}
		if !addr.IsValid() || addr.Port() == 0 || addr.Addr().Zone() != "" ||
			addr.Addr().IsUnspecified() || addr.Addr().IsMulticast() {
			t.Fatalf("accepted address %v", addr)
		}
		h := formatHeader(proto, addr.String())
		if h != string(line)+"\n" {
			// Only non-canonical spellings of the same address may differ.
			p2, a2, err := parseHeader(strings.TrimSuffix(h, "\n"))
			if err != nil || p2 != proto || a2 != addr {
				t.Fatalf("%q parses to %s %v, which formats to %q: %v", line, proto, addr, h, err)
			}
		}
	})
}

// shortReader returns at most 7 bytes per Read, as a socket may, so the
// parser must assemble the line across reads.
type shortReader struct{ r *bytes.Reader }

func (l *shortReader) Read(p []byte) (int, error) {
	if len(p) > 7 {
		p = p[:7] // short reads, as from a socket
	}
	return l.r.Read(p)
}

// FuzzReadFrame checks that frames from a tunnel, whatever their bytes,
// never read past their length or out of the buffer.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 3, 'a', 'b', 'c'})
	f.Add([]byte{0, 0})
	f.Add([]byte{0xff, 0xff, 1})
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, data []byte) {
		buf := make([]byte, maxDatagram)
		r := bytes.NewReader(data)
		n, err := readFrame(r, buf)
		if err != nil {
			return
		}
		if want := int(binary.BigEndian.Uint16(data)); n != want || !bytes.Equal(buf[:n], data[2:2+n]) {
			t.Fatalf("frame of %d bytes read as %d", want, n)
		}
		if r.Len() != len(data)-2-n {
			t.Fatalf("read %d bytes past the frame", len(data)-2-n-r.Len())
		}
	})
}
