package dns

import (
	"bufio"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
)

// HostUpstreams reads the nameservers of a resolv.conf file as "ip:53"
// addresses (IPv6 in brackets, zone kept), in file order. It returns an empty
// list if the file cannot be read or names no valid nameserver.
func HostUpstreams(resolvConfPath string) []string {
	f, err := os.Open(resolvConfPath)
	if err != nil {
		return []string{}
	}
	defer f.Close()
	ups := []string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) < 2 || fields[0] != "nameserver" {
			continue
		}
		addr, err := netip.ParseAddr(fields[1])
		if err != nil {
			continue
		}
		up := net.JoinHostPort(addr.Unmap().String(), "53")
		if !slices.Contains(ups, up) {
			ups = append(ups, up)
		}
	}
	return ups
}
