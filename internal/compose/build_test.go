package compose

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildPlans checks how build: sections become plans: names, paths,
// arguments, secrets, contexts, and the refusals that `drover config`
// shows as warnings instead of failing.
func TestBuildPlans(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("token.txt", "s3cret\n")
	write("compose.yaml", `name: shop
services:
  web:
    build: ./web
  api:
    image: example/api:2
    pull_policy: build
    build:
      context: api
      dockerfile: build/Dockerfile.prod
      target: runtime
      args:
        VERSION: "1.2"
        FROM_ENV:
      labels:
        team: core
      tags: ["example/api:latest"]
      no_cache: true
      pull: true
      network: none
      shm_size: 64m
      extra_hosts: ["db=10.0.0.9"]
      secrets: [token, {source: envtok, target: tok2}]
      additional_contexts:
        assets: ../assets
        base: docker-image://busybox:latest
        other: service:web
      cache_from: ["type=local,src=/tmp/cache"]
      cache_to: ["type=inline"]
      platforms: [linux/amd64]
  inline:
    build:
      dockerfile_inline: |
        FROM busybox
        RUN true
  badnet:
    build:
      context: .
      network: backend
  wasm:
    build:
      context: .
      platforms: [wasi/wasm]
  plain:
    image: busybox
secrets:
  token:
    file: ./token.txt
  envtok:
    environment: BUILD_TOKEN
`)
	res, err := Load(testContext(t), Options{WorkingDir: dir, Environ: []string{"BUILD_TOKEN=x"}})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	plans := map[string]BuildPlan{}
	for _, b := range res.Builds {
		plans[b.Service] = b
	}
	if len(plans) != 5 {
		t.Fatalf("plans for %d services, want 5 (plain has no build:): %+v", len(plans), res.Builds)
	}
	web := plans["web"]
	if web.Image != "shop-web" || web.Context != filepath.Join(dir, "web") || web.Dockerfile != filepath.Join(dir, "web", "Dockerfile") || web.Refusal != nil {
		t.Errorf("web plan = %+v", web)
	}
	for _, s := range res.Spec.Services {
		if s.Name == "web" && s.Image != "shop-web" {
			t.Errorf("web's spec image = %q, want shop-web", s.Image)
		}
	}
	api := plans["api"]
	checks := []struct {
		what      string
		got, want any
	}{
		{"image", api.Image, "example/api:2"},
		{"names", strings.Join(api.Names(), " "), "example/api:2 example/api:latest"},
		{"dockerfile", api.Dockerfile, filepath.Join(dir, "api", "build", "Dockerfile.prod")},
		{"target", api.Target, "runtime"},
		{"args", len(api.Args), 1},
		{"arg", api.Args["VERSION"], "1.2"},
		{"label", api.Labels["team"], "core"},
		{"no cache", api.NoCache, true},
		{"pull", api.Pull, true},
		{"network", api.Network, "none"},
		{"shm", api.ShmSize, int64(64 << 20)},
		{"hosts", strings.Join(api.ExtraHosts, ","), "db=10.0.0.9"},
		{"secrets", len(api.Secrets), 2},
		{"secret file", api.Secrets[0], BuildSecret{ID: "token", File: filepath.Join(dir, "token.txt")}},
		{"secret env", api.Secrets[1], BuildSecret{ID: "tok2", Env: "BUILD_TOKEN"}},
		{"context dir", api.AdditionalContexts["assets"], filepath.Join(dir, "..", "assets")}, // compose-go resolves it from the project dir
		{"context image", api.AdditionalContexts["base"], "docker-image://busybox:latest"},
		{"context service", api.AdditionalContexts["other"], "docker-image://shop-web"},
		{"platform", api.Platform, "linux/amd64"},
		{"always", api.Always, true},
		{"cache to", strings.Join(api.CacheTo, ","), "type=inline"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("api plan %s = %v, want %v", c.what, c.got, c.want)
		}
	}
	if p := plans["inline"]; !strings.Contains(p.DockerfileInline, "RUN true") || p.Dockerfile != "" {
		t.Errorf("inline plan = %+v", p)
	}
	for svc, want := range map[string]string{"badnet": "project networks are not reachable", "wasm": "node's own platform"} {
		r := plans[svc].Refusal
		if r == nil || !strings.Contains(r.Message, want) || r.Line == 0 {
			t.Errorf("%s: refusal = %v, want a located one saying %q", svc, r, want)
			continue
		}
		found := false
		for _, w := range res.Warnings {
			found = found || (w.Service == svc && strings.Contains(w.Message, want) && w.Line > 0)
		}
		if !found {
			t.Errorf("%s: no located warning for the refusal in %v", svc, res.Warnings)
		}
	}
}

func TestParseCacheEntry(t *testing.T) {
	for in, want := range map[string]string{
		"example/app:cache":              "registry ref=example/app:cache",
		"type=local,src=/tmp/c":          "local src=/tmp/c",
		"type=inline":                    "inline ",
		"type=registry,ref=r/x,mode=max": "registry mode=max ref=r/x",
	} {
		e, err := ParseCacheEntry(in)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		got := e.Type + " "
		keys := sortedKeys(e.Attrs)
		for i, k := range keys {
			if i > 0 {
				got += " "
			}
			got += k + "=" + e.Attrs[k]
		}
		if got != want {
			t.Errorf("%q = %q, want %q", in, got, want)
		}
	}
	for _, bad := range []string{"type=floppy", "src=/x", "type=local,=x"} {
		if _, err := ParseCacheEntry(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
