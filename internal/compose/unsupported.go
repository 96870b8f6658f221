package compose

import (
	"reflect"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
)

// The keys Drover honours are listed here; every other key is found by
// reflection over compose-go's structs, so a key that a newer compose-go
// learns is reported as unsupported until Drover deliberately handles it.

// serviceKeys are the service keys Translate maps (or that compose-go has
// already applied while loading: profiles, extends, label_file, env_file).
// deploy, build and network_mode are handled apart.
var serviceKeys = map[string]bool{
	"name": true, "image": true, "command": true, "entrypoint": true,
	"environment": true, "env_file": true, "ports": true, "networks": true,
	"scale": true, "restart": true, "labels": true, "label_file": true,
	"user": true, "working_dir": true, "hostname": true, "stop_signal": true,
	"stop_grace_period": true, "extra_hosts": true, "profiles": true,
	"extends": true, "deploy": true, "build": true, "network_mode": true,
	"healthcheck": true, "depends_on": true, "volumes": true, "tmpfs": true,
	"secrets": true, "configs": true, "cap_add": true, "cap_drop": true,
	"privileged": true, "devices": true, "sysctls": true, "ulimits": true,
	"shm_size": true, "init": true, "pid": true, "ipc": true,
	"security_opt": true, "read_only": true, "dns": true, "dns_search": true,
	"dns_opt": true, "domainname": true, "mac_address": true,
	"oom_score_adj": true, "stdin_open": true, "tty": true, "mem_limit": true,
	"memswap_limit": true, "cpus": true, "cpu_shares": true,
	"pids_limit": true, "group_add": true, "logging": true, "pull_policy": true,
	"container_name": true, "expose": true, "runtime": true, "platform": true,
}

// deployKeys are the deploy keys Drover honours; mode is checked apart,
// resources in part (see resourceLimits).
var deployKeys = map[string]bool{"replicas": true, "restart_policy": true, "mode": true, "resources": true, "placement": true,
	"update_config": true, "rollback_config": true}

func (t *translator) unsupported(s types.ServiceConfig) {
	for _, key := range setFields(&s, serviceKeys) {
		switch key {
		case "links", "volumes_from":
			// compose-go turned them into depends_on, which Drover honours.
			t.warn(s.Name, key, "%s, except for the start order it implies (see depends_on)", notSupported)
		default:
			t.warn(s.Name, key, notSupported)
		}
	}
	if d := s.Deploy; d != nil {
		for _, key := range setFields(d, deployKeys) {
			t.warn(s.Name, "deploy."+key, notSupported)
		}
	}
}

// topLevel warns for the top-level sections Drover does not use yet.
func (t *translator) topLevel(p *types.Project) {
	section := func(key string, names []string) {
		if len(names) > 0 {
			t.warn("", key, "%s (%s)", notSupported, strings.Join(names, ", "))
		}
	}
	section("models", sortedKeys(p.Models))
	section("jobs", sortedKeys(p.Jobs))
}

// setFields returns the YAML names of the fields of the struct that v
// points to which are set (not zero, not empty) and not in known, in field
// order. Inline structs are walked into; fields hidden from YAML ("-") and
// extensions (x-*) are skipped: Compose itself ignores extensions.
func setFields(v any, known map[string]bool) []string {
	var out []string
	walkFields(reflect.ValueOf(v).Elem(), known, &out)
	return out
}

func walkFields(v reflect.Value, known map[string]bool, out *[]string) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && strings.Contains(opts, "inline") && f.Type.Kind() == reflect.Struct {
			walkFields(v.Field(i), known, out)
			continue
		}
		if name == "-" || strings.HasPrefix(name, "#") || f.Name == "Extensions" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if known[name] || isEmpty(v.Field(i)) {
			continue
		}
		*out = append(*out, name)
	}
}

func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Map, reflect.Slice:
		return v.Len() == 0
	case reflect.Pointer, reflect.Interface:
		return v.IsNil()
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() && !isEmpty(v.Field(i)) {
				return false
			}
		}
		return true
	}
	return v.IsZero()
}
