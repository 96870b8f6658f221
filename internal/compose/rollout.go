package compose

import (
	"fmt"
	"math"
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
	// In key order, so that the same file always gives the same warnings
	// and, of two bad values, the same error.
	for _, key := range sortedKeys(m) {
		v := m[key]
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
		return canaryCount(int64(c), v)
	case int64:
		return canaryCount(c, v)
	case uint64:
		if c > maxTasks {
			return "", fmt.Errorf("%d: want at most %d tasks, or a percentage like \"25%%\"", c, maxTasks)
		}
		return canaryCount(int64(c), v)
	case float64:
		if c != math.Trunc(c) || math.Abs(c) > maxTasks {
			return "", fmt.Errorf("%v: want a whole number of tasks or a percentage like \"25%%\"", c)
		}
		return canaryCount(int64(c), v)
	case string:
		s := strings.TrimSpace(c)
		if p, ok := strings.CutSuffix(s, "%"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil || n < 1 || n > 100 {
				return "", fmt.Errorf("%q: want a percentage from 1%% to 100%%", c)
			}
			return strconv.Itoa(n) + "%", nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return "", fmt.Errorf("%q: want a number of tasks or a percentage like \"25%%\"", c)
		}
		return canaryCount(n, v)
	}
	return "", fmt.Errorf("%v: want a number of tasks or a percentage like \"25%%\"", v)
}

// maxTasks bounds counts of tasks in the file (canary, parallelism): far
// above any cluster, and below what an int holds everywhere.
const maxTasks = math.MaxInt32

func canaryCount(n int64, written any) (string, error) {
	if n < 0 || n > maxTasks {
		return "", fmt.Errorf("%v: want a number of tasks from 0 to %d, or a percentage like \"25%%\"", written, maxTasks)
	}
	return strconv.FormatInt(n, 10), nil
}

// updateConfig checks and maps one update or rollback config; nil when
// the file has none. A rollback config cannot itself roll back.
func updateConfig(service, key string, c *types.UpdateConfig, update bool) (*api.UpdateConfig, error) {
	if c == nil {
		return nil, nil
	}
	out := &api.UpdateConfig{Delay: api.Duration(c.Delay)}
	if c.Parallelism != nil {
		if *c.Parallelism > maxTasks {
			return nil, &Error{Service: service, Key: key + ".parallelism", Message: fmt.Sprintf("%d: want 0 (all at once) or a number of tasks up to %d", *c.Parallelism, maxTasks)}
		}
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
	// Written as !(in range) so that NaN (.nan in YAML) is refused too.
	if r := c.MaxFailureRatio; !(r >= 0 && r <= 1) {
		return nil, &Error{Service: service, Key: key + ".max_failure_ratio", Message: fmt.Sprintf("%v: want a ratio from 0 to 1", r)}
	}
	// compose-go holds the ratio as a float32: widen it through its
	// shortest decimal form, so that 0.1 stays 0.1 and not 0.10000000149.
	out.MaxFailureRatio, _ = strconv.ParseFloat(strconv.FormatFloat(float64(c.MaxFailureRatio), 'g', -1, 32), 64)
	if c.Delay < 0 {
		return nil, &Error{Service: service, Key: key + ".delay", Message: fmt.Sprintf("%v: want a duration of 0 or more", time.Duration(c.Delay))}
	}
	if c.Monitor < 0 {
		return nil, &Error{Service: service, Key: key + ".monitor", Message: fmt.Sprintf("%v: want a duration of 0 or more (0 means the default, 5s)", time.Duration(c.Monitor))}
	}
	// compose-go reads an absent monitor as zero; as in Swarm, zero means
	// the default (5s), and a monitor as short as 1ms is as good as none.
	if c.Monitor > 0 {
		m := api.Duration(time.Duration(c.Monitor))
		out.Monitor = &m
	}
	return out, nil
}
