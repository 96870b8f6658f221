package lb

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadLineBound(t *testing.T) {
	tests := []struct {
		in   string
		want string
		err  error
	}{
		{"abc\n", "abc", nil},
		{"abcdefg\n", "abcdefg", nil}, // 8 bytes: the limit
		{"abcdefgh\n", "", errLineTooLong},
		{"abcdefghijklmnop", "", errLineTooLong},
		{"abc", "", io.ErrUnexpectedEOF},
		{"", "", io.EOF},
		{"\nrest", "", nil},
	}
	for _, tt := range tests {
		got, err := readLine(bufio.NewReader(strings.NewReader(tt.in)), 8)
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("readLine(%q, 8) = %q, %v; want %q, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

// A refusal with the longest reason still reads back as one reply line.
func TestErrReplyFitsReplyBound(t *testing.T) {
	reply := errReply(strings.Repeat("why\n", 200))
	if len(reply) != maxReplyLen {
		t.Errorf("reply is %d bytes, want it cut to %d", len(reply), maxReplyLen)
	}
	line, err := readLine(bufio.NewReader(strings.NewReader(reply)), maxReplyLen)
	if err != nil || !strings.HasPrefix(line, "ERR why why") {
		t.Errorf("reading the reply back: %q, %v", line, err)
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	for _, tc := range []struct{ proto, addr string }{
		{"tcp", "10.1.2.3:80"},
		{"udp", "[fd00::1]:53"},
		{"tcp", "[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:65535"}, // as long as they come
	} {
		h := formatHeader(tc.proto, tc.addr)
		if len(h) > maxHeaderLen {
			t.Errorf("header %q is longer than %d bytes", h, maxHeaderLen)
		}
		proto, addr, err := readHeader(bufio.NewReader(strings.NewReader(h + "payload")))
		if err != nil || proto != tc.proto || addr.String() != tc.addr {
			t.Errorf("readHeader(%q) = %s %v, %v", h, proto, addr, err)
		}
	}
}
