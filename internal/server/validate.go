package server

import (
	"fmt"
	"net"
	"regexp"
	"strings"

	"github.com/drover-org/drover/api"
)

var (
	stackNameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	serviceNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
)

// ValidateSpec checks a stack spec as the API receives it. The message
// names the service and key at fault.
func ValidateSpec(spec api.StackSpec) error {
	if !stackNameRE.MatchString(spec.Name) {
		return api.Errorf(api.ErrInvalid, "project name %q: must contain only lowercase letters, digits, dashes and underscores, and start with a letter or digit", spec.Name)
	}
	if len(spec.Services) == 0 {
		return api.Errorf(api.ErrInvalid, "project %q has no services", spec.Name)
	}
	nets := map[string]bool{}
	for _, n := range spec.Networks {
		if n.Name == "" {
			return api.Errorf(api.ErrInvalid, "project %q: a network has no name", spec.Name)
		}
		nets[n.Name] = true
	}
	seen := map[string]bool{}
	for _, s := range spec.Services {
		fail := func(key, format string, args ...any) error {
			return api.Errorf(api.ErrInvalid, "service %q: %s: %s", s.Name, key, fmt.Sprintf(format, args...))
		}
		if !serviceNameRE.MatchString(s.Name) {
			return api.Errorf(api.ErrInvalid, "service name %q: must start with a letter or digit and contain only letters, digits, '_', '.' and '-'", s.Name)
		}
		if seen[s.Name] {
			return api.Errorf(api.ErrInvalid, "service %q is defined twice", s.Name)
		}
		seen[s.Name] = true
		if strings.TrimSpace(s.Image) == "" {
			return fail("image", "is required")
		}
		if s.Replicas < 0 {
			return fail("deploy.replicas", "must not be negative, got %d", s.Replicas)
		}
		for _, p := range s.Ports {
			if p.Target == 0 {
				return fail("ports", "container port must be 1-65535")
			}
			if p.Protocol != "tcp" && p.Protocol != "udp" {
				return fail("ports", "protocol %q: must be tcp or udp", p.Protocol)
			}
			if p.HostIP != "" && net.ParseIP(p.HostIP) == nil {
				return fail("ports", "host_ip %q is not an IP address", p.HostIP)
			}
		}
		for _, n := range s.Networks {
			if !nets[n.Name] {
				return fail("networks", "network %q is not declared in the project", n.Name)
			}
		}
		switch s.Restart.Condition {
		case api.RestartNone, api.RestartOnFailure, api.RestartAny:
		default:
			return fail("restart", "condition %q: must be none, on-failure or any", s.Restart.Condition)
		}
		if s.Restart.MaxAttempts < 0 || s.Restart.Delay < 0 || s.Restart.Window < 0 {
			return fail("deploy.restart_policy", "delay, max_attempts and window must not be negative")
		}
		for _, h := range s.ExtraHosts {
			if net.ParseIP(h.IP) == nil && h.IP != "host-gateway" {
				return fail("extra_hosts", "%q: %q is not an IP address", h.Host, h.IP)
			}
		}
		for _, e := range s.Env {
			if !strings.Contains(e, "=") || strings.HasPrefix(e, "=") {
				return fail("environment", "%q: want KEY=VALUE", e)
			}
		}
	}
	return nil
}
