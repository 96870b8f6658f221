package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"

	"github.com/drover-org/drover/api"
)

// cniPortMapping is one entry of the portMappings capability, as portmap
// reads it.
type cniPortMapping struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
	// Group is ours; portmap ignores it. It survives in libcni's cache so
	// the sharing rule below holds across restarts.
	Group string `json:"droverGroup,omitempty"`
}

// String names a mapping the way users write it: 127.0.0.1:8080->80/tcp.
func (p PortMapping) String() string {
	host := strconv.Itoa(int(p.HostPort))
	if p.HostIP != "" {
		host = net.JoinHostPort(p.HostIP, host)
	}
	return fmt.Sprintf("%s->%d/%s", host, p.ContainerPort, normProto(p.Protocol))
}

func normProto(p string) string {
	if p == "" {
		return "tcp"
	}
	return strings.ToLower(p)
}

// validatePorts checks the mappings and that no two of them claim the same
// host port.
func validatePorts(ports []PortMapping) error {
	for i, p := range ports {
		if p.HostPort == 0 || p.ContainerPort == 0 {
			return fmt.Errorf("port %s: host and container port must be 1-65535: %w", p, api.ErrInvalid)
		}
		if proto := normProto(p.Protocol); proto != "tcp" && proto != "udp" {
			return fmt.Errorf("port %s: protocol must be tcp or udp: %w", p, api.ErrInvalid)
		}
		if p.HostIP != "" {
			ip := net.ParseIP(p.HostIP)
			if ip == nil || ip.To4() == nil {
				return fmt.Errorf("port %s: host IP %q is not an IPv4 address: %w", p, p.HostIP, api.ErrInvalid)
			}
		}
		for _, q := range ports[:i] {
			if portsOverlap(p, q) {
				return fmt.Errorf("port %s: host port is published twice (also %s): %w", p, q, api.ErrInvalid)
			}
		}
	}
	return nil
}

// portsOverlap reports whether two mappings claim the same host socket. An
// empty or unspecified host IP means every address.
func portsOverlap(a, b PortMapping) bool {
	if a.HostPort != b.HostPort || normProto(a.Protocol) != normProto(b.Protocol) {
		return false
	}
	if isAnyIP(a.HostIP) || isAnyIP(b.HostIP) {
		return true
	}
	return net.ParseIP(a.HostIP).Equal(net.ParseIP(b.HostIP))
}

func isAnyIP(s string) bool {
	if s == "" {
		return true
	}
	ip := net.ParseIP(s)
	return ip == nil || ip.IsUnspecified()
}

// capabilityArgs is what the ADD and DEL of the primary network get.
func capabilityArgs(ports []PortMapping) map[string]any {
	if len(ports) == 0 {
		return nil
	}
	maps := make([]cniPortMapping, 0, len(ports))
	for _, p := range ports {
		hostIP := p.HostIP
		if isAnyIP(hostIP) {
			hostIP = ""
		}
		maps = append(maps, cniPortMapping{
			HostPort:      int(p.HostPort),
			ContainerPort: int(p.ContainerPort),
			Protocol:      normProto(p.Protocol),
			HostIP:        hostIP,
			Group:         p.Group,
		})
	}
	return map[string]any{"portMappings": maps}
}

// portsFromCapabilityArgs reads the mappings back from libcni's cache, where
// they went through JSON.
func portsFromCapabilityArgs(args map[string]any) []PortMapping {
	raw, ok := args["portMappings"]
	if !ok {
		return nil
	}
	data, err := json.Marshal(raw)
	if err != nil {
		return nil
	}
	var maps []cniPortMapping
	if err := json.Unmarshal(data, &maps); err != nil {
		return nil
	}
	out := make([]PortMapping, 0, len(maps))
	for _, m := range maps {
		out = append(out, PortMapping{
			HostIP:        m.HostIP,
			HostPort:      uint16(m.HostPort),
			ContainerPort: uint16(m.ContainerPort),
			Protocol:      m.Protocol,
			Group:         m.Group,
		})
	}
	return out
}

// checkPortsFree fails with ErrConflict if a host port is already published
// by another task (from libcni's cache, so it holds across restarts) or has a
// listener on the host. portmap itself would happily add a second DNAT rule
// or shadow the host's listener, so this check is ours.
func (m *Manager) checkPortsFree(id string, ports []PortMapping) error {
	if len(ports) == 0 {
		return nil
	}
	atts, err := m.cni.GetCachedAttachments("")
	if err != nil {
		return fmt.Errorf("read CNI cache: %w", err)
	}
	for _, a := range atts {
		if a.ContainerID == id {
			continue
		}
		for _, theirs := range portsFromCapabilityArgs(a.CapabilityArgs) {
			for _, p := range ports {
				if portsOverlap(p, theirs) && (p.Group == "" || p.Group != theirs.Group) {
					return fmt.Errorf("port %s: host port already in use by task %s (%s): %w", p, a.ContainerID, theirs, api.ErrConflict)
				}
			}
		}
	}
	for _, p := range ports {
		if err := probeHostPort(p); err != nil {
			return err
		}
	}
	return nil
}

// probeHostPort binds the host port for a moment to see whether a host
// process has it.
func probeHostPort(p PortMapping) error {
	host := p.HostIP
	if isAnyIP(host) {
		host = "0.0.0.0"
	}
	addr := net.JoinHostPort(host, strconv.Itoa(int(p.HostPort)))
	var err error
	switch normProto(p.Protocol) {
	case "udp":
		var c net.PacketConn
		if c, err = net.ListenPacket("udp4", addr); err == nil {
			_ = c.Close()
		}
	default:
		var l net.Listener
		if l, err = net.Listen("tcp4", addr); err == nil {
			_ = l.Close()
		}
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("port %s: host port already in use by a process on the host: %w", p, api.ErrConflict)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return fmt.Errorf("port %s: host IP %s is not an address of this host: %w", p, p.HostIP, api.ErrInvalid)
	default:
		return fmt.Errorf("port %s: check host port: %w", p, err)
	}
}
