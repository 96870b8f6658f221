package compose

import (
	"fmt"
	"math"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/drover-org/drover/api"
)

// healthcheck maps healthcheck: onto the probe the agent runs. compose-go
// has already turned a plain string test into ["CMD-SHELL", string] and
// checked that a list starts with CMD, CMD-SHELL or NONE. `disable: true`
// and a NONE test both come out as {Test: [NONE], Disable: true}, which
// turns off the image's own HEALTHCHECK.
func healthcheck(s types.ServiceConfig) (*api.Healthcheck, error) {
	h := s.HealthCheck
	if h == nil {
		return nil, nil
	}
	if h.Disable || (len(h.Test) > 0 && h.Test[0] == "NONE") {
		return &api.Healthcheck{Test: []string{"NONE"}, Disable: true}, nil
	}
	out := &api.Healthcheck{Test: cloneStrings(h.Test)}
	if len(out.Test) > 0 {
		switch out.Test[0] {
		case "CMD", "CMD-SHELL":
			if len(out.Test) < 2 {
				return nil, &Error{Service: s.Name, Key: "healthcheck.test", Message: fmt.Sprintf("%s needs a command after it", out.Test[0])}
			}
		default:
			return nil, &Error{Service: s.Name, Key: "healthcheck.test", Message: fmt.Sprintf("%q: a test list starts with CMD, CMD-SHELL or NONE", out.Test[0])}
		}
	}
	for _, d := range []struct {
		key string
		in  *types.Duration
		out *api.Duration
	}{
		{"interval", h.Interval, &out.Interval},
		{"timeout", h.Timeout, &out.Timeout},
		{"start_period", h.StartPeriod, &out.StartPeriod},
		{"start_interval", h.StartInterval, &out.StartInterval},
	} {
		if d.in == nil {
			continue
		}
		if *d.in < 0 {
			return nil, &Error{Service: s.Name, Key: "healthcheck." + d.key, Message: "must not be negative"}
		}
		*d.out = api.Duration(*d.in)
	}
	if h.Retries != nil {
		out.Retries = int(min(*h.Retries, math.MaxInt32))
	}
	return out, nil
}

// dependsOn lists depends_on sorted by service. compose-go has already
// normalized both syntaxes (condition defaults to service_started, required
// to true) and added the dependencies that links, volumes_from and
// network_mode: service:X imply. A dependency on a service that is not
// deployed (its profile is off; compose-go accepts that when required is
// false) is dropped with a warning.
func (t *translator) dependsOn(s types.ServiceConfig, active types.Services) ([]api.Dependency, error) {
	var out []api.Dependency
	for _, name := range sortedKeys(s.DependsOn) {
		d := s.DependsOn[name]
		cond := d.Condition
		switch cond {
		case "":
			cond = api.ConditionStarted
		case api.ConditionStarted, api.ConditionHealthy, api.ConditionCompleted:
		default:
			return nil, &Error{Service: s.Name, Key: "depends_on", Message: fmt.Sprintf(
				"%s: %q is not a condition: use service_started, service_healthy or service_completed_successfully", name, d.Condition)}
		}
		if _, ok := active[name]; !ok {
			t.warn(s.Name, "depends_on", "%q is not deployed (not required, and its profile is not active): the dependency is ignored", name)
			continue
		}
		out = append(out, api.Dependency{Service: name, Condition: cond, Required: d.Required, Restart: d.Restart})
	}
	return out, nil
}
