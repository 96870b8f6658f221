package compose

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/drover-org/drover/api"
)

// defaultStopGracePeriod is Docker's wait between the stop signal and
// SIGKILL when stop_grace_period is not set.
const defaultStopGracePeriod = 10 * time.Second

// defaultNetwork is the network of a service that lists none, as in Compose.
const defaultNetwork = "default"

// Translate turns a compose-go project into the spec Drover deploys. It is
// pure: it reads no files and no environment, and the same project always
// gives the same spec and warnings (services and networks sorted by name).
//
// The warnings it returns carry no file or line (the project has none);
// Load adds them from the source files. Secrets and configs read from a
// file: have no content yet: Load reads them (see readContents).
func Translate(p *types.Project) (api.StackSpec, []Warning, error) {
	if p == nil {
		return api.StackSpec{}, nil, &Error{Message: "no Compose project"}
	}
	t := translator{}
	spec := api.StackSpec{Name: p.Name, Services: []api.ServiceSpec{}}

	usedNetworks, usedVolumes, usedSecrets, usedConfigs := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, name := range sortedKeys(p.Services) {
		svc, err := t.service(p.Services[name], p)
		if err != nil {
			return api.StackSpec{}, nil, err
		}
		for _, n := range svc.Networks {
			usedNetworks[n.Name] = true
		}
		for _, m := range svc.Mounts {
			if m.Type == api.MountVolume && m.Source != "" {
				usedVolumes[m.Source] = true
			}
		}
		for _, f := range svc.Secrets {
			usedSecrets[f.Source] = true
		}
		for _, f := range svc.Configs {
			usedConfigs[f.Source] = true
		}
		spec.Services = append(spec.Services, svc)
	}

	for _, name := range sortedKeys(usedNetworks) {
		ns := api.NetworkSpec{Name: name}
		if cfg, ok := p.Networks[name]; ok {
			var err error
			if ns, err = t.network(p.Name, name, cfg); err != nil {
				return api.StackSpec{}, nil, err
			}
		}
		spec.Networks = append(spec.Networks, ns)
	}
	var err error
	if spec.Volumes, err = t.volumes(p, usedVolumes); err != nil {
		return api.StackSpec{}, nil, err
	}
	secrets := map[string]types.FileObjectConfig{}
	for k, v := range p.Secrets {
		secrets[k] = types.FileObjectConfig(v)
	}
	if spec.Secrets, err = t.fileObjects(p, "secrets", usedSecrets, secrets); err != nil {
		return api.StackSpec{}, nil, err
	}
	configs := map[string]types.FileObjectConfig{}
	for k, v := range p.Configs {
		configs[k] = types.FileObjectConfig(v)
	}
	if spec.Configs, err = t.fileObjects(p, "configs", usedConfigs, configs); err != nil {
		return api.StackSpec{}, nil, err
	}
	t.topLevel(p)

	sortWarnings(t.warnings)
	return spec, t.warnings, nil
}

type translator struct {
	warnings []Warning
}

func (t *translator) warn(service, key, format string, args ...any) {
	t.warnings = append(t.warnings, Warning{Service: service, Key: key, Message: fmt.Sprintf(format, args...)})
}

func (t *translator) service(s types.ServiceConfig, p *types.Project) (api.ServiceSpec, error) {
	image := s.Image
	if image == "" && s.Build != nil {
		// Built by the CLI before the deploy (see BuildPlans).
		image = DefaultImageName(p.Name, s.Name)
	}
	if image == "" {
		return api.ServiceSpec{}, &Error{Service: s.Name, Key: "image", Message: "has no image: set image: to the image to run, or build: to build one"}
	}
	spec := api.ServiceSpec{
		Name:            s.Name,
		Image:           image,
		Command:         cloneStrings(s.Command),
		Entrypoint:      cloneStrings(s.Entrypoint),
		Env:             environment(s.Environment),
		Labels:          copyLabels(s.Labels),
		User:            s.User,
		WorkingDir:      s.WorkingDir,
		Hostname:        s.Hostname,
		StopSignal:      s.StopSignal,
		StopGracePeriod: api.Duration(defaultStopGracePeriod),
		Replicas:        s.GetScale(),
	}
	// An entrypoint without a command keeps Command nil here. Docker then
	// runs the new entrypoint with no arguments: setting an entrypoint drops
	// the image's CMD. The runtime does the same when it sees Entrypoint set
	// and Command nil, so this stays faithful to `docker compose up`.
	// `command: []` (or "") clears the image's CMD instead of keeping it.
	spec.ClearCommand = s.Command != nil && len(s.Command) == 0
	spec.ClearEntrypoint = s.Entrypoint != nil && len(s.Entrypoint) == 0
	if s.StopGracePeriod != nil {
		spec.StopGracePeriod = api.Duration(*s.StopGracePeriod)
	}

	switch strings.ToLower(s.PullPolicy) {
	case "", "missing", "if_not_present":
	case "always", "never":
		spec.PullPolicy = strings.ToLower(s.PullPolicy)
	case "build":
		// The CLI builds it on every up; nodes take the result from the
		// cluster's store like any loaded image.
		if s.Build == nil {
			return api.ServiceSpec{}, &Error{Service: s.Name, Key: "pull_policy", Message: "build: the service has no build: section to build from"}
		}
	default:
		// daily, weekly, every_<duration>: pulls on a schedule.
		t.warn(s.Name, "pull_policy", "%q is treated as missing: Drover pulls an image only when a node lacks it", s.PullPolicy)
	}

	var err error
	if spec.Ports, err = t.ports(s); err != nil {
		return api.ServiceSpec{}, err
	}
	if spec.NetworkMode, err = t.networkMode(s); err != nil {
		return api.ServiceSpec{}, err
	}
	if err = t.rollout(s, &spec); err != nil {
		return api.ServiceSpec{}, err
	}
	if err = t.deployment(s, &spec); err != nil {
		return api.ServiceSpec{}, err
	}
	if err = t.containerKeys(s, &spec); err != nil {
		return api.ServiceSpec{}, err
	}
	if spec.Networks, err = t.networks(s); err != nil {
		return api.ServiceSpec{}, err
	}
	if spec.Restart, err = t.restart(s); err != nil {
		return api.ServiceSpec{}, err
	}
	if spec.ExtraHosts, err = extraHosts(s); err != nil {
		return api.ServiceSpec{}, err
	}
	if spec.Healthcheck, err = healthcheck(s); err != nil {
		return api.ServiceSpec{}, err
	}
	if spec.DependsOn, err = t.dependsOn(s, p.Services); err != nil {
		return api.ServiceSpec{}, err
	}
	if spec.Mounts, err = t.mounts(s, p.WorkingDir); err != nil {
		return api.ServiceSpec{}, err
	}
	if spec.Secrets, err = secretRefs(s); err != nil {
		return api.ServiceSpec{}, err
	}
	if spec.Configs, err = configRefs(s); err != nil {
		return api.ServiceSpec{}, err
	}
	if spec.Settings, err = t.settings(s); err != nil {
		return api.ServiceSpec{}, err
	}
	t.unsupported(s)
	return spec, nil
}

// environment renders the resolved environment (environment: and env_file:
// merged by compose-go) as sorted KEY=VALUE. A variable without a value
// that the environment does not define either is left out, as Docker does.
func environment(env types.MappingWithEquals) []string {
	var out []string
	for k, v := range env {
		if v == nil {
			continue
		}
		out = append(out, k+"="+*v)
	}
	sort.Strings(out)
	return out
}

func (t *translator) ports(s types.ServiceConfig) ([]api.PortSpec, error) {
	var out []api.PortSpec
	for i, p := range s.Ports {
		proto := strings.ToLower(p.Protocol)
		switch proto {
		case "":
			proto = "tcp"
		case "tcp", "udp":
		default:
			return nil, &Error{Service: s.Name, Key: "ports", Message: fmt.Sprintf("port %d: protocol %q is not supported: use tcp or udp", p.Target, p.Protocol)}
		}
		if p.Target == 0 || p.Target > math.MaxUint16 {
			return nil, &Error{Service: s.Name, Key: "ports", Message: fmt.Sprintf("entry %d: target port %d is out of range 1-65535", i+1, p.Target)}
		}
		if p.HostIP != "" {
			if _, err := netip.ParseAddr(strings.Trim(p.HostIP, "[]")); err != nil {
				return nil, &Error{Service: s.Name, Key: "ports", Message: fmt.Sprintf("port %d: host_ip %q is not an IP address", p.Target, p.HostIP)}
			}
		}
		if p.Name != "" || p.AppProtocol != "" {
			t.warn(s.Name, "ports", "port %d: name and app_protocol %s", p.Target, notSupportedPlural)
		}
		lo, hi, err := portRange(p.Published)
		if err != nil {
			return nil, &Error{Service: s.Name, Key: "ports", Message: fmt.Sprintf("port %d: published %q: %v", p.Target, p.Published, err)}
		}
		if hi > lo {
			// Docker picks one free port of the range; Drover has no such
			// choice in its spec, so it publishes the first.
			t.warn(s.Name, "ports", "port %d: a published range (%s) for one target port is not supported yet: publishing %d", p.Target, p.Published, lo)
		}
		mode := ""
		switch p.Mode {
		case "", "ingress":
		case "host":
			mode = "host"
		default:
			return nil, &Error{Service: s.Name, Key: "ports", Message: fmt.Sprintf("port %d: mode %q: want ingress or host", p.Target, p.Mode)}
		}
		out = append(out, api.PortSpec{
			Mode:      mode,
			HostIP:    strings.Trim(p.HostIP, "[]"),
			Published: lo,
			Target:    uint16(p.Target),
			Protocol:  proto,
		})
	}
	slices.SortStableFunc(out, func(a, b api.PortSpec) int {
		if c := strings.Compare(a.Protocol, b.Protocol); c != 0 {
			return c
		}
		if a.Target != b.Target {
			return int(a.Target) - int(b.Target)
		}
		if a.Published != b.Published {
			return int(a.Published) - int(b.Published)
		}
		return strings.Compare(a.HostIP, b.HostIP)
	})
	return slices.Compact(out), nil
}

const notSupportedPlural = "are not supported yet and are ignored"

// portRange parses a published port: "" (none), "8080" or "8000-8010".
// compose-go has already expanded ranges that map one to one onto target
// ports; what is left here is a range for a single target.
func portRange(s string) (lo, hi uint16, err error) {
	if s == "" {
		return 0, 0, nil
	}
	a, b, isRange := strings.Cut(s, "-")
	l, err := parsePort(a)
	if err != nil {
		return 0, 0, err
	}
	if !isRange {
		return l, l, nil
	}
	h, err := parsePort(b)
	if err != nil {
		return 0, 0, err
	}
	if h < l {
		return 0, 0, fmt.Errorf("range ends before it starts")
	}
	return l, h, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil {
		return 0, fmt.Errorf("not a port number 0-65535")
	}
	return uint16(n), nil
}

// restart maps restart: and deploy.restart_policy onto Drover's policy;
// deploy.restart_policy wins when both are set. With neither, a task that
// ends is not restarted, as with `docker compose up`.
func (t *translator) restart(s types.ServiceConfig) (api.RestartPolicy, error) {
	if s.Deploy != nil && s.Deploy.RestartPolicy != nil {
		rp := s.Deploy.RestartPolicy
		out := api.RestartPolicy{Condition: rp.Condition}
		switch rp.Condition {
		case "":
			out.Condition = api.RestartAny // swarm's default
		case api.RestartNone, api.RestartOnFailure, api.RestartAny:
		default:
			return api.RestartPolicy{}, &Error{Service: s.Name, Key: "deploy.restart_policy.condition",
				Message: fmt.Sprintf("%q is not a restart condition: use none, on-failure or any", rp.Condition)}
		}
		if rp.Delay != nil {
			out.Delay = api.Duration(*rp.Delay)
		}
		if rp.Window != nil {
			out.Window = api.Duration(*rp.Window)
		}
		if rp.MaxAttempts != nil {
			out.MaxAttempts = int(min(*rp.MaxAttempts, math.MaxInt32))
		}
		if s.Restart != "" {
			t.warn(s.Name, "restart", "is overridden by deploy.restart_policy")
		}
		return out, nil
	}
	policy, arg, _ := strings.Cut(s.Restart, ":")
	switch policy {
	case "", types.RestartPolicyNo:
		return api.RestartPolicy{Condition: api.RestartNone}, nil
	case types.RestartPolicyAlways, types.RestartPolicyUnlessStopped:
		return api.RestartPolicy{Condition: api.RestartAny}, nil
	case types.RestartPolicyOnFailure:
		out := api.RestartPolicy{Condition: api.RestartOnFailure}
		if arg != "" {
			n, err := strconv.Atoi(arg)
			if err != nil || n < 0 {
				return api.RestartPolicy{}, &Error{Service: s.Name, Key: "restart",
					Message: fmt.Sprintf("%q: the number of attempts after on-failure: must be a whole number", s.Restart)}
			}
			out.MaxAttempts = n
		}
		return out, nil
	}
	return api.RestartPolicy{}, &Error{Service: s.Name, Key: "restart",
		Message: fmt.Sprintf("%q is not a restart policy: use no, always, on-failure[:N] or unless-stopped", s.Restart)}
}

// extraHosts flattens compose-go's host -> IPs map, sorted.
func extraHosts(s types.ServiceConfig) ([]api.ExtraHost, error) {
	var out []api.ExtraHost
	for _, host := range sortedKeys(s.ExtraHosts) {
		for _, ip := range s.ExtraHosts[host] {
			ip = strings.TrimSuffix(strings.TrimPrefix(ip, "["), "]")
			if host == "" || ip == "" {
				return nil, &Error{Service: s.Name, Key: "extra_hosts",
					Message: fmt.Sprintf("%q: want host:ip or host=ip", host+"="+ip)}
			}
			out = append(out, api.ExtraHost{Host: host, IP: ip})
		}
	}
	slices.SortStableFunc(out, func(a, b api.ExtraHost) int {
		if c := strings.Compare(a.Host, b.Host); c != 0 {
			return c
		}
		return strings.Compare(a.IP, b.IP)
	})
	return slices.Compact(out), nil
}

func cloneStrings(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}

func copyLabels(l types.Labels) map[string]string {
	if len(l) == 0 {
		return nil
	}
	out := make(map[string]string, len(l))
	for k, v := range l {
		out[k] = v
	}
	return out
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sortWarnings(ws []Warning) {
	slices.SortStableFunc(ws, func(a, b Warning) int {
		if c := strings.Compare(a.Service, b.Service); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
}
