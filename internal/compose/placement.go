package compose

import (
	"fmt"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/drover-org/drover/api"
)

// deployment translates deploy.mode, deploy.placement and
// deploy.resources.reservations: what the scheduler places by.
func (t *translator) deployment(s types.ServiceConfig, spec *api.ServiceSpec) error {
	d := s.Deploy
	if d == nil {
		return nil
	}
	switch d.Mode {
	case "", "replicated":
	case "global":
		spec.Mode = "global"
	default:
		return &Error{Service: s.Name, Key: "deploy.mode", Message: fmt.Sprintf("%q: want replicated or global", d.Mode)}
	}
	p := d.Placement
	for _, c := range p.Constraints {
		if !strings.Contains(c, "==") && !strings.Contains(c, "!=") {
			return &Error{Service: s.Name, Key: "deploy.placement.constraints", Message: fmt.Sprintf("%q: want KEY==VALUE or KEY!=VALUE", c)}
		}
		spec.Placement.Constraints = append(spec.Placement.Constraints, c)
	}
	for _, pref := range p.Preferences {
		if pref.Spread == "" {
			return &Error{Service: s.Name, Key: "deploy.placement.preferences", Message: "a preference needs spread: node.labels.KEY"}
		}
		spec.Placement.Preferences = append(spec.Placement.Preferences, pref.Spread)
	}
	spec.Placement.MaxReplicasPerNode = int(p.MaxReplicas)
	if r := d.Resources.Reservations; r != nil {
		spec.Reservations = api.Resources{CPUs: cpus(float32(r.NanoCPUs)), MemoryBytes: int64(r.MemoryBytes)}
		if len(r.Devices) > 0 {
			t.warn(s.Name, "deploy.resources.reservations.devices", notSupported)
		}
		if len(r.GenericResources) > 0 {
			t.warn(s.Name, "deploy.resources.reservations.generic_resources", notSupported)
		}
		if r.Pids != 0 {
			t.warn(s.Name, "deploy.resources.reservations.pids", notSupported)
		}
	}
	return nil
}
