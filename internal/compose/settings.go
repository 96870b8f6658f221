package compose

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/drover-org/drover/api"
)

// settings maps the container-level keys of a service (capabilities,
// devices, limits, namespaces, DNS, logging...) onto ContainerSettings.
func (t *translator) settings(s types.ServiceConfig) (api.ContainerSettings, error) {
	out := api.ContainerSettings{
		CapAdd:       cloneStrings(s.CapAdd),
		CapDrop:      cloneStrings(s.CapDrop),
		Privileged:   s.Privileged,
		ShmSize:      int64(s.ShmSize),
		SecurityOpt:  cloneStrings(s.SecurityOpt),
		ReadOnly:     s.ReadOnly,
		DNS:          cloneStrings(s.DNS),
		DNSSearch:    cloneStrings(s.DNSSearch),
		DNSOpt:       cloneStrings(s.DNSOpts),
		Domainname:   s.DomainName,
		MacAddress:   s.MacAddress,
		OomScoreAdj:  int(max(min(s.OomScoreAdj, 1000), -1000)),
		StdinOpen:    s.StdinOpen,
		Tty:          s.Tty,
		MemLimit:     int64(s.MemLimit),
		MemswapLimit: int64(s.MemSwapLimit),
		CPUs:         cpus(float32(s.CPUS)),
		CPUShares:    s.CPUShares,
		PidsLimit:    s.PidsLimit,
		GroupAdd:     cloneStrings(s.GroupAdd),
	}
	if s.OomScoreAdj < -1000 || s.OomScoreAdj > 1000 {
		return out, &Error{Service: s.Name, Key: "oom_score_adj", Message: fmt.Sprintf("%d is out of range -1000 to 1000", s.OomScoreAdj)}
	}
	if s.ShmSize < 0 {
		return out, &Error{Service: s.Name, Key: "shm_size", Message: "must not be negative"}
	}
	if s.Init != nil {
		out.Init = *s.Init
	}
	if len(s.Sysctls) > 0 {
		out.Sysctls = make(map[string]string, len(s.Sysctls))
		for k, v := range s.Sysctls {
			out.Sysctls[k] = v
		}
	}

	switch s.Pid {
	case "", "host":
		out.Pid = s.Pid
	default:
		t.warn(s.Name, "pid", "%q %s: only \"host\" is; the service gets its own PID namespace", s.Pid, notSupportedValue)
	}
	switch s.Ipc {
	case "", "host", "private", "shareable":
		out.Ipc = s.Ipc
	default:
		t.warn(s.Name, "ipc", "%q %s: use host, private or shareable; the service gets Docker's default", s.Ipc, notSupportedValue)
	}

	for _, d := range s.Devices {
		if !strings.HasPrefix(d.Source, "/") {
			// vendor.com/class=name: a CDI device, which needs a CDI-aware runtime.
			t.warn(s.Name, "devices", "CDI device %q %s", d.Source, notSupportedValue)
			continue
		}
		dev := api.Device{Host: d.Source, Container: d.Target, Permissions: d.Permissions}
		if dev.Container == "" {
			dev.Container = dev.Host
		}
		out.Devices = append(out.Devices, dev)
	}

	for _, name := range sortedKeys(s.Ulimits) {
		u := s.Ulimits[name]
		if u == nil {
			continue
		}
		l := api.Ulimit{Name: name, Soft: int64(u.Soft), Hard: int64(u.Hard)}
		if u.Single != 0 {
			l.Soft, l.Hard = int64(u.Single), int64(u.Single)
		}
		if l.Soft > l.Hard && l.Hard >= 0 {
			return out, &Error{Service: s.Name, Key: "ulimits", Message: fmt.Sprintf("%s: soft limit %d is above hard limit %d", name, l.Soft, l.Hard)}
		}
		out.Ulimits = append(out.Ulimits, l)
	}

	t.resourceLimits(s, &out)
	if err := t.logging(s, &out); err != nil {
		return out, err
	}
	return out, nil
}

// notSupportedValue follows a quoted value that Drover cannot honour.
const notSupportedValue = "is not supported yet and is ignored"

// cpus turns compose-go's float32 into the decimal the user wrote: a plain
// float64 conversion would turn 0.1 into 0.10000000149011612.
func cpus(f float32) float64 {
	if f == 0 {
		return 0
	}
	v, err := strconv.ParseFloat(strconv.FormatFloat(float64(f), 'g', -1, 32), 64)
	if err != nil {
		return float64(f)
	}
	return v
}

// resourceLimits takes cpus, memory and pids from deploy.resources.limits.
// compose-go refuses a file that sets one of them both there and at the
// service level with distinct values, so either source will do; the rest of
// deploy.resources warns.
func (t *translator) resourceLimits(s types.ServiceConfig, out *api.ContainerSettings) {
	if s.Deploy == nil {
		return
	}
	r := s.Deploy.Resources
	if l := r.Limits; l != nil {
		if l.NanoCPUs != 0 {
			out.CPUs = cpus(float32(l.NanoCPUs))
		}
		if l.MemoryBytes != 0 {
			out.MemLimit = int64(l.MemoryBytes)
		}
		if l.Pids != 0 {
			out.PidsLimit = l.Pids
		}
		if len(l.Devices) > 0 {
			t.warn(s.Name, "deploy.resources.limits.devices", notSupported)
		}
		if len(l.GenericResources) > 0 {
			t.warn(s.Name, "deploy.resources.limits.generic_resources", notSupported)
		}
	}
}

// logOptions are the logging options Drover honours.
var logOptions = map[string]bool{"max-size": true, "max-file": true}

// logging accepts Docker's local log drivers and their rotation options.
func (t *translator) logging(s types.ServiceConfig, out *api.ContainerSettings) error {
	l := s.Logging
	if l == nil {
		return nil
	}
	switch l.Driver {
	case "", "json-file", "local":
	case "none":
		t.warn(s.Name, "logging.driver", "\"none\" %s: the container's output is kept", notSupportedValue)
	default:
		t.warn(s.Name, "logging.driver", "%q %s: Drover keeps logs with its own json-file driver", l.Driver, notSupportedValue)
		return nil
	}
	if v, ok := l.Options["max-size"]; ok {
		var size types.UnitBytes
		if err := size.DecodeMapstructure(v); err != nil || size <= 0 {
			return &Error{Service: s.Name, Key: "logging.options.max-size", Message: fmt.Sprintf("%q is not a size such as 10m or 1g", v)}
		}
		out.LogMaxSize = int64(size)
	}
	if v, ok := l.Options["max-file"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > math.MaxInt32 {
			return &Error{Service: s.Name, Key: "logging.options.max-file", Message: fmt.Sprintf("%q is not a number of files (1 or more)", v)}
		}
		out.LogMaxFile = n
	}
	for _, k := range slices.Sorted(maps.Keys(l.Options)) {
		if !logOptions[k] {
			t.warn(s.Name, "logging.options."+k, notSupported)
		}
	}
	return nil
}
