package cluster

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drover-org/drover/test/harness"
)

// Containers on different hosts reach each other by address and by
// service name over the network's VXLAN overlay; tasks.NAME lists every
// host's tasks; another network stays out of reach across hosts too; the
// containers' MTU leaves room for VXLAN.
func TestOverlayAcrossHosts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds drover and runs containers")
	}
	dc := startCluster(t, 3)
	proj := dc.up("ov", fmt.Sprintf(`
services:
  web:
    image: %[1]s
    command: ["sh", "-c", "hostname > /www/index.html; dd if=/dev/zero of=/www/big bs=1k count=256 2>/dev/null; exec httpd -f -p 80 -h /www"]
    stop_grace_period: 1s
    deploy:
      replicas: 3
      placement:
        max_replicas_per_node: 1
  client:
    image: %[1]s
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    deploy:
      placement:
        constraints: [node.hostname==h1]
  back1:
    image: %[1]s
    command: ["sh", "-c", "echo back > /www/index.html; exec httpd -f -p 80 -h /www"]
    stop_grace_period: 1s
    networks: [back]
    deploy:
      placement:
        constraints: [node.hostname==h2]
  back2:
    image: %[1]s
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    networks: [back]
    deploy:
      placement:
        constraints: [node.hostname==h3]
networks:
  back: {}
`, harness.Image))

	web := dc.running("ov", "web", "default")
	if len(web) != 3 {
		t.Fatalf("web runs on %v; want one task on each of h1, h2, h3", web)
	}
	// Each host's tasks are in its own slice of the network.
	slices := map[string]bool{}
	for _, ip := range web {
		slices[ip[:strings.LastIndex(ip, ".")]] = true
	}
	if len(slices) != 3 {
		t.Errorf("web's addresses %v: want three different /24 slices", web)
	}

	// By address: the client on h1 reaches web on h2 and h3.
	for _, h := range []string{"h2", "h3"} {
		out, err := dc.drover(proj, "exec", "-T", "client", "timeout", "10", "wget", "-qO-", "http://"+web[h]+"/")
		if err != nil || strings.TrimSpace(out) == "" {
			t.Errorf("client on h1 -> web on %s (%s): %v %q", h, web[h], err, out)
		}
	}
	// By name: the service name answers with the tasks of every host
	// (glibc then prefers the address nearest its own, the local slice),
	// and so does tasks.web.
	if out, err := dc.drover(proj, "exec", "-T", "client", "timeout", "10", "wget", "-qO-", "http://web/"); err != nil || strings.TrimSpace(out) == "" {
		t.Errorf("http://web/ from h1: %v %q", err, out)
	}
	for _, name := range []string{"web", "tasks.web"} {
		out := dc.must(proj, "exec", "-T", "client", "nslookup", name)
		for h, ip := range web {
			if !strings.Contains(out, ip) {
				t.Errorf("%s lacks %s's task %s:\n%s", name, h, ip, out)
			}
		}
	}

	// The second network spans h2 and h3 as well, and the client (default
	// network only) cannot reach it, nor can back2 reach web.
	if out, err := dc.drover(proj, "exec", "-T", "back2", "timeout", "10", "wget", "-qO-", "http://back1/"); err != nil || strings.TrimSpace(out) != "back" {
		t.Errorf("back2 on h3 -> back1 on h2 by name: %v %q", err, out)
	}
	back1 := dc.running("ov", "back1", "back")["h2"]
	if out, err := dc.drover(proj, "exec", "-T", "client", "timeout", "5", "wget", "-qO-", "http://"+back1+"/"); err == nil {
		t.Errorf("client on the default network reached back1 (%s) on another network: %q", back1, out)
	}
	if out, err := dc.drover(proj, "exec", "-T", "back2", "timeout", "5", "wget", "-qO-", "http://"+web["h2"]+"/"); err == nil {
		t.Errorf("back2 on network back reached web on h2 (%s) on the default network: %q", web["h2"], out)
	}

	// The MTU leaves room for VXLAN's 50 bytes on the hosts' link.
	link := strings.Fields(dc.c.Hosts()[0].MustExec(t, "ip", "-o", "link", "show", "dev", "eth0"))
	under := 0
	for i := 0; i+1 < len(link); i++ {
		if link[i] == "mtu" {
			under, _ = strconv.Atoi(link[i+1])
		}
	}
	if under == 0 {
		t.Fatalf("no MTU in %v", link)
	}
	out := dc.must(proj, "exec", "-T", "client", "cat", "/sys/class/net/eth0/mtu")
	if got, _ := strconv.Atoi(strings.TrimSpace(out)); got != under-50 {
		t.Errorf("client's MTU %d; want %d (the hosts' %d less VXLAN's 50)", got, under-50, under)
	}
	// Full-size segments cross.
	if out, err := dc.drover(proj, "exec", "-T", "client", "sh", "-c", "timeout 20 wget -qO- http://"+web["h3"]+"/big | wc -c"); err != nil || strings.TrimSpace(out) != "262144" {
		t.Errorf("256 KiB from web on h3: %v %q", err, out)
	}

	// down removes the overlays with the networks, on every host.
	dc.must(proj, "down")
	waitFor(t, "no VXLAN device left on the hosts", 30*time.Second, func() error {
		var left []string
		for _, h := range dc.c.Hosts() {
			out, _ := h.Exec(t, "ip", "-o", "link", "show", "type", "vxlan")
			if strings.TrimSpace(out) != "" {
				left = append(left, h.Name+": "+strings.TrimSpace(out))
			}
		}
		sort.Strings(left)
		if len(left) > 0 {
			return fmt.Errorf("%s", strings.Join(left, "; "))
		}
		return nil
	})
}

// On a dual-stack network, a container reaches one on another host by its
// IPv6 address too (each node routes the others' /80s over the overlay).
func TestOverlayIPv6AcrossHosts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds drover and runs containers")
	}
	dc := startCluster(t, 2)
	proj := dc.up("ov6", fmt.Sprintf(`
services:
  web:
    image: %[1]s
    command: ["sh", "-c", "echo six > /www/index.html; exec httpd -f -p 80 -h /www"]
    stop_grace_period: 1s
    networks: [dual]
    deploy:
      placement:
        constraints: [node.hostname==h2]
  client:
    image: %[1]s
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    networks: [dual]
    deploy:
      placement:
        constraints: [node.hostname==h1]
networks:
  dual:
    enable_ipv6: true
`, harness.Image))
	global := func(service string) string {
		out := dc.must(proj, "exec", "-T", service, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global")
		f := strings.Fields(out)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet6" {
				return strings.Split(f[i+1], "/")[0]
			}
		}
		t.Fatalf("%s has no global IPv6 address:\n%s", service, out)
		return ""
	}
	web, client := global("web"), global("client")
	if web[:strings.LastIndex(web, ":")] == client[:strings.LastIndex(client, ":")] {
		t.Errorf("web %s and client %s: want addresses of two nodes' /80s", web, client)
	}
	out, err := dc.drover(proj, "exec", "-T", "client", "timeout", "10", "wget", "-qO-", "http://["+web+"]/")
	if err != nil || strings.TrimSpace(out) != "six" {
		t.Fatalf("client on h1 -> web on h2 over IPv6 (%s): %v %q", web, err, out)
	}
}
