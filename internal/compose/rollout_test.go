package compose

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
)

func intPtr(n int) *int { return &n }

func durPtr(d time.Duration) *api.Duration {
	v := api.Duration(d)
	return &v
}

// loadService loads a compose.yaml whose only service is web, written as
// the lines below "services:\n  web:\n    image: busybox\n".
func loadService(t *testing.T, body string) (api.ServiceSpec, []Warning) {
	t.Helper()
	dir := writeFiles(t, map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n" + body})
	res, err := Load(testContext(t), Options{WorkingDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return service(t, res.Spec, "web"), res.Warnings
}

func TestRolloutMapping(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		update   *api.UpdateConfig
		rollback *api.UpdateConfig
		settings api.RolloutSettings
	}{
		{name: "absent", body: ""},
		{name: "deploy without update_config", body: "    deploy:\n      replicas: 2\n"},
		{
			name: "every update_config field",
			body: "    deploy:\n      update_config:\n        parallelism: 2\n        delay: 3s\n        order: start-first\n" +
				"        failure_action: rollback\n        monitor: 1m\n        max_failure_ratio: 0.25\n",
			update: &api.UpdateConfig{Parallelism: intPtr(2), Delay: api.Duration(3 * time.Second), Order: api.OrderStartFirst,
				FailureAction: api.FailureRollback, Monitor: durPtr(time.Minute), MaxFailureRatio: 0.25},
		},
		{
			name: "every rollback_config field",
			body: "    deploy:\n      rollback_config:\n        parallelism: 3\n        delay: 500ms\n        order: stop-first\n" +
				"        failure_action: continue\n        monitor: 10s\n        max_failure_ratio: 1\n",
			rollback: &api.UpdateConfig{Parallelism: intPtr(3), Delay: api.Duration(500 * time.Millisecond), Order: api.OrderStopFirst,
				FailureAction: api.FailureContinue, Monitor: durPtr(10 * time.Second), MaxFailureRatio: 1},
		},
		// An empty mapping is a config with every default: not nil, no
		// field set.
		{name: "empty update_config", body: "    deploy:\n      update_config: {}\n", update: &api.UpdateConfig{}},
		{name: "parallelism 0 is all at once", body: "    deploy:\n      update_config:\n        parallelism: 0\n", update: &api.UpdateConfig{Parallelism: intPtr(0)}},
		{name: "parallelism as a string", body: "    deploy:\n      update_config:\n        parallelism: \"4\"\n", update: &api.UpdateConfig{Parallelism: intPtr(4)}},
		// As in Swarm, a zero monitor is the default.
		{name: "monitor 0 is the default", body: "    deploy:\n      update_config:\n        monitor: 0s\n", update: &api.UpdateConfig{}},
		{name: "failure_action pause", body: "    deploy:\n      rollback_config:\n        failure_action: pause\n", rollback: &api.UpdateConfig{FailureAction: api.FailurePause}},
		{name: "ratio keeps its decimal value", body: "    deploy:\n      update_config:\n        max_failure_ratio: 0.1\n", update: &api.UpdateConfig{MaxFailureRatio: 0.1}},
		{
			name:     "both configs",
			body:     "    deploy:\n      update_config:\n        delay: 1s\n      rollback_config:\n        parallelism: 0\n",
			update:   &api.UpdateConfig{Delay: api.Duration(time.Second)},
			rollback: &api.UpdateConfig{Parallelism: intPtr(0)},
		},
		{name: "canary string count", body: "    x-drover:\n      canary: \"2\"\n", settings: api.RolloutSettings{Canary: "2"}},
		{name: "canary integer", body: "    x-drover:\n      canary: 2\n", settings: api.RolloutSettings{Canary: "2"}},
		{name: "canary whole float", body: "    x-drover:\n      canary: 3.0\n", settings: api.RolloutSettings{Canary: "3"}},
		{name: "canary zero", body: "    x-drover:\n      canary: 0\n", settings: api.RolloutSettings{Canary: "0"}},
		{name: "canary percentage", body: "    x-drover:\n      canary: 25%\n", settings: api.RolloutSettings{Canary: "25%"}},
		{name: "canary percentage normalised", body: "    x-drover:\n      canary: \" 010 %\"\n", settings: api.RolloutSettings{Canary: "10%"}},
		{name: "canary 100%", body: "    x-drover:\n      canary: \"100%\"\n", settings: api.RolloutSettings{Canary: "100%"}},
		{name: "canary interpolated", body: "    x-drover:\n      canary: ${CANARY:-5}\n", settings: api.RolloutSettings{Canary: "5"}},
		{name: "canary_auto_promote", body: "    x-drover:\n      canary: 1\n      canary_auto_promote: true\n", settings: api.RolloutSettings{Canary: "1", CanaryAutoPromote: true}},
		{name: "canary_auto_promote false", body: "    x-drover:\n      canary_auto_promote: false\n"},
		{name: "rollback service", body: "    x-drover:\n      rollback: service\n", settings: api.RolloutSettings{RollbackScope: "service"}},
		// stack is the default, left empty in the spec.
		{name: "rollback stack", body: "    x-drover:\n      rollback: stack\n"},
		{name: "x-drover null", body: "    x-drover:\n"},
		{name: "x-drover empty", body: "    x-drover: {}\n"},
		{name: "other extension", body: "    x-other:\n      canary: 2\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, warnings := loadService(t, tt.body)
			if !reflect.DeepEqual(svc.UpdateConfig, tt.update) {
				t.Errorf("UpdateConfig = %s, want %s", jsonOf(svc.UpdateConfig), jsonOf(tt.update))
			}
			if !reflect.DeepEqual(svc.RollbackConfig, tt.rollback) {
				t.Errorf("RollbackConfig = %s, want %s", jsonOf(svc.RollbackConfig), jsonOf(tt.rollback))
			}
			if svc.RolloutSettings != tt.settings {
				t.Errorf("RolloutSettings = %+v, want %+v", svc.RolloutSettings, tt.settings)
			}
			// Neither key warns any more, nor does x-drover when every
			// key in it is known.
			for _, w := range warnings {
				t.Errorf("unexpected warning: %s", w)
			}
		})
	}
}

func jsonOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

func TestRolloutErrors(t *testing.T) {
	const head = "services:\n  api:\n    image: busybox\n"
	tests := []struct {
		name string
		yaml string
		line int
		key  string
		msg  string // a part of the message
	}{
		{"order", head + "    deploy:\n      update_config:\n        order: sideways\n", 6, "deploy.update_config.order", "must be one of"},
		{"update failure_action", head + "    deploy:\n      update_config:\n        failure_action: explode\n", 6, "deploy.update_config.failure_action", "want pause, continue or rollback"},
		{"rollback failure_action rollback", head + "    deploy:\n      rollback_config:\n        failure_action: rollback\n", 6, "deploy.rollback_config.failure_action", "a rollback cannot itself roll back"},
		{"rollback failure_action unknown", head + "    deploy:\n      rollback_config:\n        failure_action: retry\n", 6, "deploy.rollback_config.failure_action", "want pause or continue"},
		{"ratio above 1", head + "    deploy:\n      update_config:\n        max_failure_ratio: 2\n", 6, "deploy.update_config.max_failure_ratio", "want a ratio from 0 to 1"},
		{"ratio below 0", head + "    deploy:\n      rollback_config:\n        max_failure_ratio: -0.5\n", 6, "deploy.rollback_config.max_failure_ratio", "want a ratio from 0 to 1"},
		{"ratio NaN", head + "    deploy:\n      update_config:\n        max_failure_ratio: .nan\n", 6, "deploy.update_config.max_failure_ratio", ".nan: want a finite number"},
		{"ratio infinite", head + "    deploy:\n      update_config:\n        max_failure_ratio: \"-Inf\"\n", 6, "deploy.update_config.max_failure_ratio", "-Inf: want a finite number"},
		{"ratio not a number", head + "    deploy:\n      update_config:\n        max_failure_ratio: most\n", 6, "deploy.update_config.max_failure_ratio", "most"},
		{"negative delay", head + "    deploy:\n      update_config:\n        delay: -1s\n", 6, "deploy.update_config.delay", "want a duration of 0 or more"},
		{"negative monitor", head + "    deploy:\n      rollback_config:\n        monitor: -5s\n", 6, "deploy.rollback_config.monitor", "want a duration of 0 or more"},
		{"bad delay", head + "    deploy:\n      update_config:\n        delay: soon\n", 6, "deploy.update_config.delay", "invalid duration"},
		{"negative parallelism", head + "    deploy:\n      update_config:\n        parallelism: -1\n", 6, "deploy.update_config.parallelism", "-1"},
		{"huge parallelism", head + "    deploy:\n      update_config:\n        parallelism: 18446744073709551615\n", 6, "deploy.update_config.parallelism", "want 0 (all at once) or a number of tasks"},
		{"unknown update_config key", head + "    deploy:\n      update_config:\n        paralelism: 2\n", 6, "deploy.update_config.paralelism", "not a Compose key"},
		{"x-drover not a mapping", head + "    x-drover: 3\n", 4, "x-drover", "want a mapping"},
		{"canary word", head + "    x-drover:\n      canary: half\n", 5, "x-drover.canary", "want a number of tasks or a percentage"},
		{"canary negative", head + "    x-drover:\n      canary: -1\n", 5, "x-drover.canary", "from 0 to"},
		{"canary negative string", head + "    x-drover:\n      canary: \"-2\"\n", 5, "x-drover.canary", "from 0 to"},
		{"canary fraction", head + "    x-drover:\n      canary: 1.5\n", 5, "x-drover.canary", "whole number"},
		{"canary huge", head + "    x-drover:\n      canary: 18446744073709551615\n", 5, "x-drover.canary", "at most"},
		{"canary 0%", head + "    x-drover:\n      canary: 0%\n", 5, "x-drover.canary", "from 1% to 100%"},
		{"canary 101%", head + "    x-drover:\n      canary: 101%\n", 5, "x-drover.canary", "from 1% to 100%"},
		{"canary fractional %", head + "    x-drover:\n      canary: 12.5%\n", 5, "x-drover.canary", "from 1% to 100%"},
		{"canary bool", head + "    x-drover:\n      canary: true\n", 5, "x-drover.canary", "want a number of tasks"},
		{"canary list", head + "    x-drover:\n      canary: [1]\n", 5, "x-drover.canary", "want a number of tasks"},
		{"canary_auto_promote string", head + "    x-drover:\n      canary_auto_promote: \"true\"\n", 5, "x-drover.canary_auto_promote", "want true or false"},
		{"canary_auto_promote number", head + "    x-drover:\n      canary_auto_promote: 1\n", 5, "x-drover.canary_auto_promote", "want true or false"},
		{"rollback scope", head + "    x-drover:\n      rollback: everything\n", 5, "x-drover.rollback", "want stack"},
		{"rollback scope case", head + "    x-drover:\n      rollback: Service\n", 5, "x-drover.rollback", "want stack"},
		{"rollback scope type", head + "    x-drover:\n      rollback: true\n", 5, "x-drover.rollback", "want stack"},
		// Of two bad values, always the first in key order.
		{"two bad values", head + "    x-drover:\n      rollback: all\n      canary: half\n", 6, "x-drover.canary", "half"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"compose.yaml": tt.yaml})
			file := filepath.Join(dir, "compose.yaml")
			_, err := Load(testContext(t), Options{Files: []string{file}})
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v (%T), want *compose.Error", err, err)
			}
			if !errors.Is(err, api.ErrInvalid) {
				t.Errorf("errors.Is(err, api.ErrInvalid) = false")
			}
			if ce.File != file || ce.Line != tt.line || ce.Service != "api" || ce.Key != tt.key {
				t.Errorf("got file=%q line=%d service=%q key=%q, want %q %d %q %q\n(%v)",
					ce.File, ce.Line, ce.Service, ce.Key, file, tt.line, "api", tt.key, err)
			}
			if !strings.Contains(ce.Message, tt.msg) {
				t.Errorf("message %q does not contain %q", ce.Message, tt.msg)
			}
			if s := err.Error(); !strings.Contains(s, `service "api"`) || !strings.Contains(s, `key "`+tt.key+`"`) {
				t.Errorf("error %q does not name the service and key", s)
			}
		})
	}
}

// TestRolloutUnknownKeys: a key of x-drover that Drover does not know
// warns where it is written, in key order, and the known keys still apply.
func TestRolloutUnknownKeys(t *testing.T) {
	svc, warnings := loadService(t, "    x-drover:\n      zeta: 1\n      canary: 2\n      alpha: [x]\n    x-note: ignored\n")
	if svc.RolloutSettings.Canary != "2" {
		t.Errorf("canary %q, want 2", svc.RolloutSettings.Canary)
	}
	type loc struct {
		line int
		key  string
	}
	var got []loc
	for _, w := range warnings {
		if w.Service != "web" || !strings.Contains(w.Message, "is not a Drover setting") {
			t.Errorf("warning %s", w)
		}
		got = append(got, loc{w.Line, w.Key})
	}
	want := []loc{{7, "x-drover.alpha"}, {5, "x-drover.zeta"}}
	if !slices.Equal(got, want) {
		t.Errorf("warnings %v, want %v", got, want)
	}
	if len(warnings) > 0 {
		if s := warnings[0].String(); !strings.HasSuffix(s, `compose.yaml:7: service "web": key "x-drover.alpha" is not a Drover setting (canary, canary_auto_promote, rollback) and is ignored`) {
			t.Errorf("String() = %q", s)
		}
	}
}

// TestRolloutOverride: x-drover and update_config merge across files as
// the rest of a service does.
func TestRolloutOverride(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"compose.yaml": "services:\n  web:\n    image: busybox\n    x-drover:\n      canary: 1\n    deploy:\n      update_config:\n        parallelism: 2\n        order: start-first\n",
		"compose.override.yaml": "services:\n  web:\n    x-drover:\n      canary: 50%\n      rollback: service\n" +
			"    deploy:\n      update_config:\n        parallelism: 4\n",
	})
	res, err := Load(testContext(t), Options{WorkingDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	web := service(t, res.Spec, "web")
	if want := (api.RolloutSettings{Canary: "50%", RollbackScope: "service"}); web.RolloutSettings != want {
		t.Errorf("RolloutSettings = %+v, want %+v", web.RolloutSettings, want)
	}
	if want := (&api.UpdateConfig{Parallelism: intPtr(4), Order: api.OrderStartFirst}); !reflect.DeepEqual(web.UpdateConfig, want) {
		t.Errorf("UpdateConfig = %s, want %s", jsonOf(web.UpdateConfig), jsonOf(want))
	}
}
