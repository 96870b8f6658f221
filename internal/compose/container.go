package compose

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/containerd/platforms"

	"github.com/drover-org/drover/api"
)

// containerNameRE is Docker's rule for container names.
var containerNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// runtimeNameRE accepts an OCI runtime binary's name ("crun", "runsc") or a
// containerd shim name ("io.containerd.kata.v2"); paths are not allowed:
// the node decides where the binary is.
var runtimeNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.+-]*$`)

// containerKeys maps container_name, expose, runtime and platform. It runs
// after deployment, which sets the replica count and mode container_name
// depends on.
func (t *translator) containerKeys(s types.ServiceConfig, spec *api.ServiceSpec) error {
	if s.ContainerName != "" {
		if !containerNameRE.MatchString(s.ContainerName) {
			return &Error{Service: s.Name, Key: "container_name", Message: fmt.Sprintf("%q is not a valid container name: use letters, digits, '_', '.' and '-', starting with a letter or digit", s.ContainerName)}
		}
		if spec.Mode == "global" {
			return &Error{Service: s.Name, Key: "container_name", Message: "cannot be set on a global service: a container name must be unique, and a global service runs one container on each node"}
		}
		if spec.Replicas > 1 {
			return &Error{Service: s.Name, Key: "container_name", Message: fmt.Sprintf("cannot be set with %d replicas: a container name must be unique; remove container_name or run one replica", spec.Replicas)}
		}
		spec.ContainerName = s.ContainerName
	}
	for _, e := range s.Expose {
		p, err := exposedPort(e)
		if err != nil {
			return &Error{Service: s.Name, Key: "expose", Message: fmt.Sprintf("%q: %v", e, err)}
		}
		spec.Expose = append(spec.Expose, p)
	}
	if s.Runtime != "" && s.Runtime != "runc" {
		if !runtimeNameRE.MatchString(s.Runtime) {
			return &Error{Service: s.Name, Key: "runtime", Message: fmt.Sprintf("%q: want the name of an OCI runtime on the nodes' PATH (runc, crun, runsc) or a containerd shim name (io.containerd.NAME.vN)", s.Runtime)}
		}
		spec.Runtime = s.Runtime
	}
	if s.Platform != "" {
		p, err := platforms.Parse(s.Platform)
		if err != nil {
			return &Error{Service: s.Name, Key: "platform", Message: fmt.Sprintf("%q is not a platform: want os/arch[/variant], such as linux/amd64", s.Platform)}
		}
		if p.OS == "windows" || p.OS == "darwin" {
			// wasi/wasm and the like run on Linux nodes through a
			// runtime: shim; these never do.
			return &Error{Service: s.Name, Key: "platform", Message: fmt.Sprintf("%q: Drover's nodes run Linux, not %s, containers", s.Platform, p.OS)}
		}
		spec.Platform = platforms.Format(platforms.Normalize(p))
	}
	return nil
}

// exposedPort normalises an expose entry ("80", "80/udp", "3000-3005")
// to "80/tcp", "80/udp", "3000-3005/tcp".
func exposedPort(s string) (string, error) {
	ports, proto, _ := strings.Cut(strings.TrimSpace(s), "/")
	switch proto = strings.ToLower(proto); proto {
	case "":
		proto = "tcp"
	case "tcp", "udp", "sctp":
	default:
		return "", fmt.Errorf("protocol %q: want tcp, udp or sctp", proto)
	}
	lo, hi, err := portRange(ports)
	if err != nil {
		return "", err
	}
	if lo == 0 {
		return "", fmt.Errorf("port 0 cannot be exposed")
	}
	if hi > lo {
		return strconv.Itoa(int(lo)) + "-" + strconv.Itoa(int(hi)) + "/" + proto, nil
	}
	return strconv.Itoa(int(lo)) + "/" + proto, nil
}

// platformWarnings warn for each service whose platform is not host's
// (the platform `drover config` and `up` run on). It is a warning, not an
// error: in a cluster the nodes may be of another platform than the CLI's
// host, and the node is the one that refuses a task it cannot run.
func platformWarnings(spec api.StackSpec, host string) []Warning {
	hp, err := platforms.Parse(host)
	if err != nil {
		return nil
	}
	match := platforms.Only(hp)
	var out []Warning
	for _, s := range spec.Services {
		if s.Platform == "" {
			continue
		}
		if p, err := platforms.Parse(s.Platform); err == nil && !match.Match(p) {
			out = append(out, Warning{Service: s.Name, Key: "platform", Message: fmt.Sprintf(
				"%s is not this host's platform (%s): only a node of that platform, or one whose runtime: shim runs it, can run it; Drover does not emulate other platforms",
				s.Platform, platforms.Format(platforms.Normalize(hp)))})
		}
	}
	return out
}
