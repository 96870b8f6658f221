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
	volumes, secrets, configs := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = true
	}
	for _, v := range spec.Secrets {
		secrets[v.Name] = true
	}
	for _, v := range spec.Configs {
		configs[v.Name] = true
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
		if s.ContainerName != "" {
			if !serviceNameRE.MatchString(s.ContainerName) {
				return fail("container_name", "%q: must start with a letter or digit and contain only letters, digits, '_', '.' and '-'", s.ContainerName)
			}
			if s.Replicas > 1 || s.Mode == "global" {
				return fail("container_name", "cannot be set on a service of more than one container (replicas %d, mode %q): a container name must be unique", s.Replicas, s.Mode)
			}
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
		for _, d := range s.DependsOn {
			switch d.Condition {
			case api.ConditionStarted, api.ConditionHealthy, api.ConditionCompleted:
			default:
				return fail("depends_on", "%q: condition %q: must be service_started, service_healthy or service_completed_successfully", d.Service, d.Condition)
			}
		}
		for _, m := range s.Mounts {
			if !strings.HasPrefix(m.Target, "/") {
				return fail("volumes", "target %q must be an absolute path", m.Target)
			}
			switch m.Type {
			case api.MountBind:
				if !strings.HasPrefix(m.Source, "/") {
					return fail("volumes", "bind source %q must be an absolute path", m.Source)
				}
			case api.MountVolume:
				if m.Source != "" && !volumes[m.Source] {
					return fail("volumes", "volume %q is not declared in the top-level volumes", m.Source)
				}
			case api.MountTmpfs:
			default:
				return fail("volumes", "type %q: must be bind, volume or tmpfs", m.Type)
			}
		}
		for _, r := range s.Secrets {
			if !secrets[r.Source] {
				return fail("secrets", "secret %q is not declared in the top-level secrets", r.Source)
			}
		}
		for _, r := range s.Configs {
			if !configs[r.Source] {
				return fail("configs", "config %q is not declared in the top-level configs", r.Source)
			}
		}
	}
	return checkDependencies(spec)
}

// checkDependencies refuses depends_on entries that name no service (when
// required) and dependency cycles, before anything starts.
func checkDependencies(spec api.StackSpec) error {
	deps := map[string][]string{}
	for _, s := range spec.Services {
		for _, d := range s.DependsOn {
			deps[s.Name] = append(deps[s.Name], d.Service)
		}
	}
	for _, s := range spec.Services {
		for _, d := range s.DependsOn {
			if _, ok := findService(spec, d.Service); !ok && d.Required {
				return api.Errorf(api.ErrInvalid, "service %q: depends_on: service %q is not defined", s.Name, d.Service)
			}
		}
	}
	const (
		unvisited = iota
		visiting
		done
	)
	state := map[string]int{}
	var path []string
	var visit func(string) error
	visit = func(n string) error {
		switch state[n] {
		case visiting:
			i := 0
			for path[i] != n {
				i++
			}
			return api.Errorf(api.ErrInvalid, "depends_on: dependency cycle: %s -> %s", strings.Join(path[i:], " -> "), n)
		case done:
			return nil
		}
		state[n] = visiting
		path = append(path, n)
		for _, d := range deps[n] {
			if err := visit(d); err != nil {
				return err
			}
		}
		path = path[:len(path)-1]
		state[n] = done
		return nil
	}
	for _, s := range spec.Services {
		if err := visit(s.Name); err != nil {
			return err
		}
	}
	return nil
}

func findService(spec api.StackSpec, name string) (api.ServiceSpec, bool) {
	for _, s := range spec.Services {
		if s.Name == name {
			return s, true
		}
	}
	return api.ServiceSpec{}, false
}
