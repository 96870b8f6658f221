package compose

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/drover-org/drover/api"
)

// rolloutKey is the service extension holding Drover's rollout settings.
const rolloutKey = "x-drover"

// rollout translates deploy.update_config, deploy.rollback_config and the
// x-drover extension: how a changed service's tasks are replaced.
func (t *translator) rollout(s types.ServiceConfig, spec *api.ServiceSpec) error {
	if d := s.Deploy; d != nil {
		var err error
		if spec.UpdateConfig, err = updateConfig(s.Name, "deploy.update_config", d.UpdateConfig, true); err != nil {
			return err
		}
		if spec.RollbackConfig, err = updateConfig(s.Name, "deploy.rollback_config", d.RollbackConfig, false); err != nil {
			return err
		}
	}
	raw, ok := s.Extensions[rolloutKey]
	if !ok || raw == nil {
		return nil
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return &Error{Service: s.Name, Key: rolloutKey, Message: fmt.Sprintf("want a mapping (canary, canary_auto_promote, rollback), got %v", raw)}
	}
	for key, v := range m {
		where := rolloutKey + "." + key
		switch key {
		case "canary":
			c, err := canarySetting(v)
			if err != nil {
				return &Error{Service: s.Name, Key: where, Message: err.Error()}
			}
			spec.RolloutSettings.Canary = c
		case "canary_auto_promote":
			b, ok := v.(bool)
			if !ok {
				return &Error{Service: s.Name, Key: where, Message: fmt.Sprintf("%v: want true or false", v)}
			}
			spec.RolloutSettings.CanaryAutoPromote = b
		case "rollback":
			scope, _ := v.(string)
			if scope != "stack" && scope != "service" {
				return &Error{Service: s.Name, Key: where, Message: fmt.Sprintf("%v: want stack (roll back every service of the revision, the default) or service (this one only)", v)}
			}
			if scope == "service" {
				spec.RolloutSettings.RollbackScope = scope
			}
		default:
			t.warn(s.Name, where, "is not a Drover setting (canary, canary_auto_promote, rollback) and is ignored")
		}
	}
	return nil
}

// canarySetting normalises x-drover.canary: a count ("2", 2) or a
// percentage of the replicas ("25%").
func canarySetting(v any) (string, error) {
	switch c := v.(type) {
	case int:
		if c < 0 {
			return "", fmt.Errorf("%d: want a number of tasks of 0 or more, or a percentage like \"25%%\"", c)
		}
		return strconv.Itoa(c), nil
	case int64:
		return canarySetting(int(c))
	case uint64:
		return canarySetting(int(c))
	case float64:
		if c != float64(int(c)) {
			return "", fmt.Errorf("%v: want a whole number of tasks or a percentage like \"25%%\"", c)
		}
		return canarySetting(int(c))
	case string:
		s := strings.TrimSpace(c)
		if p, ok := strings.CutSuffix(s, "%"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil || n < 1 || n > 100 {
				return "", fmt.Errorf("%q: want a percentage from 1%% to 100%%", c)
			}
			return strconv.Itoa(n) + "%", nil
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return "", fmt.Errorf("%q: want a number of tasks or a percentage like \"25%%\"", c)
		}
		return canarySetting(n)
	}
	return "", fmt.Errorf("%v: want a number of tasks or a percentage like \"25%%\"", v)
}

// updateConfig checks and maps one update or rollback config; nil when
// the file has none. A rollback config cannot itself roll back.
func updateConfig(service, key string, c *types.UpdateConfig, update bool) (*api.UpdateConfig, error) {
	if c == nil {
		return nil, nil
	}
	out := &api.UpdateConfig{Delay: api.Duration(c.Delay), MaxFailureRatio: float64(c.MaxFailureRatio)}
	if c.Parallelism != nil {
		p := int(*c.Parallelism)
		out.Parallelism = &p
	}
	switch c.Order {
	case "", api.OrderStopFirst, api.OrderStartFirst:
		out.Order = c.Order
	default:
		return nil, &Error{Service: service, Key: key + ".order", Message: fmt.Sprintf("%q: want stop-first or start-first", c.Order)}
	}
	switch c.FailureAction {
	case "", api.FailurePause, api.FailureContinue:
		out.FailureAction = c.FailureAction
	case api.FailureRollback:
		if !update {
			return nil, &Error{Service: service, Key: key + ".failure_action", Message: "rollback: a rollback cannot itself roll back; want pause or continue"}
		}
		out.FailureAction = c.FailureAction
	default:
		want := "pause, continue or rollback"
		if !update {
			want = "pause or continue"
		}
		return nil, &Error{Service: service, Key: key + ".failure_action", Message: fmt.Sprintf("%q: want %s", c.FailureAction, want)}
	}
	if c.MaxFailureRatio < 0 || c.MaxFailureRatio > 1 {
		return nil, &Error{Service: service, Key: key + ".max_failure_ratio", Message: fmt.Sprintf("%v: want a ratio from 0 to 1", c.MaxFailureRatio)}
	}
	if c.Delay < 0 || c.Monitor < 0 {
		return nil, &Error{Service: service, Key: key, Message: "delay and monitor cannot be negative"}
	}
	// compose-go reads an absent monitor as zero; as in Swarm, zero means
	// the default (5s), and a monitor as short as 1ms is as good as none.
	if c.Monitor > 0 {
		m := api.Duration(time.Duration(c.Monitor))
		out.Monitor = &m
	}
	return out, nil
}
