package integration

import (
	"fmt"
	"testing"

	"github.com/miekg/dns"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// httpGet fetches a URL with a short timeout and returns the body.
func httpGet(url string) (string, error) {
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("status %s", resp.Status)
	}
	return string(b), err
}

// portAnswers reports whether something accepts TCP connections at addr.
func portAnswers(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func countLines(out, substr string) int {
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

// lookupA asks the DNS server at server:53 for name's A records.
func lookupA(t *testing.T, server, name string) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	c := &dns.Client{Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, net.JoinHostPort(server, "53"))
	if err != nil {
		t.Fatalf("DNS query for %s at %s: %v", name, server, err)
	}
	var ips []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			ips = append(ips, a.A.String())
		}
	}
	return ips
}
