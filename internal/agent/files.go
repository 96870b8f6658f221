package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/network"
	drt "github.com/drover-org/drover/internal/runtime"
)

// writeFiles writes the task's /etc/hosts, /etc/hostname and
// /etc/resolv.conf and returns the mounts that put them in place.
func (a *Agent) writeFiles(t api.Task, req network.Request, addrs, addrs6 map[string]string) ([]drt.Mount, error) {
	dir := a.taskDir(t.ID)
	for file, m := range map[string]map[string]string{"addresses.json": addrs, "addresses6.json": addrs6} {
		b, _ := json.Marshal(m)
		if err := os.WriteFile(filepath.Join(dir, file), b, 0o600); err != nil {
			return nil, err
		}
	}
	hosts := hostsFile(t, req, addrs, addrs6)
	if t.Spec.NetworkMode == "host" {
		b, _ := os.ReadFile("/etc/hosts")
		hosts = string(b) + extraHosts(t, req)
	}
	files := map[string]string{
		"hosts":       hosts,
		"hostname":    t.Hostname() + "\n",
		"resolv.conf": resolvConf(req, t.Spec.Settings, a.hostResolvConf()),
	}
	var mounts []drt.Mount
	for _, name := range []string{"hosts", "hostname", "resolv.conf"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(files[name]), 0o644); err != nil {
			return nil, fmt.Errorf("write %s: %w", name, err)
		}
		mounts = append(mounts, drt.Mount{Source: p, Target: "/etc/" + name})
	}
	return mounts, nil
}

func hostsFile(t api.Task, req network.Request, addrs, addrs6 map[string]string) string {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	if len(req.Networks) > 0 {
		if ip := addrs[req.Networks[0].Name]; ip != "" {
			fmt.Fprintf(&b, "%s\t%s\n", ip, t.Hostname())
		}
		if ip := addrs6[req.Networks[0].Name]; ip != "" {
			fmt.Fprintf(&b, "%s\t%s\n", ip, t.Hostname())
		}
	}
	b.WriteString(extraHosts(t, req))
	return b.String()
}

func extraHosts(t api.Task, req network.Request) string {
	var b strings.Builder
	for _, h := range t.Spec.ExtraHosts {
		ip := h.IP
		if ip == "host-gateway" {
			ip = "127.0.0.1"
			if len(req.Networks) > 0 {
				ip = req.Networks[0].Gateway
			}
		}
		fmt.Fprintf(&b, "%s\t%s\n", ip, h.Host)
	}
	return b.String()
}

// resolvConf points the container at the node's DNS server on its first
// network's gateway; without a network it gets the host's resolvers.
func resolvConf(req network.Request, set api.ContainerSettings, host string) string {
	var b strings.Builder
	if len(req.Networks) == 0 && len(set.DNS) == 0 {
		b.WriteString(host)
	} else {
		if len(req.Networks) > 0 {
			b.WriteString("nameserver " + req.Networks[0].Gateway + "\n")
		}
		for _, ns := range set.DNS {
			b.WriteString("nameserver " + ns + "\n")
		}
	}
	if len(set.DNSSearch) > 0 {
		b.WriteString("search " + strings.Join(set.DNSSearch, " ") + "\n")
	}
	opts := set.DNSOpt
	if len(req.Networks) > 0 && len(opts) == 0 {
		opts = []string{"ndots:0"}
	}
	if len(opts) > 0 {
		b.WriteString("options " + strings.Join(opts, " ") + "\n")
	}
	return b.String()
}

func (a *Agent) hostResolvConf() string {
	b, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return ""
	}
	return string(b)
}
