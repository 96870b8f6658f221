package compose

import (
	"fmt"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
)

// BuildPlan is what building one service's image takes: the service's
// `build:` section resolved against the project (paths made absolute,
// arguments interpolated, secrets found). It is the CLI's input to BuildKit
// and never goes on the wire.
type BuildPlan struct {
	Service string `json:"service"`
	// Image is the name the result is tagged with: the service's image:,
	// or PROJECT-SERVICE as Compose names it.
	Image string `json:"image"`
	// Tags are build.tags: more names for the same image.
	Tags []string `json:"tags,omitempty"`
	// Context is an absolute directory, or a URL that BuildKit fetches
	// (a Git repository) when RemoteContext is set.
	Context       string `json:"context"`
	RemoteContext bool   `json:"remoteContext,omitempty"`
	// Dockerfile is the Dockerfile's absolute path (ignored when
	// DockerfileInline is set).
	Dockerfile       string            `json:"dockerfile,omitempty"`
	DockerfileInline string            `json:"dockerfileInline,omitempty"`
	Args             map[string]string `json:"args,omitempty"`
	Target           string            `json:"target,omitempty"`
	Labels           map[string]string `json:"labels,omitempty"`
	NoCache          bool              `json:"noCache,omitempty"`
	Pull             bool              `json:"pull,omitempty"`
	// Network is the network of RUN steps: "" (BuildKit's default: the
	// host's), "host" or "none".
	Network    string   `json:"network,omitempty"`
	ShmSize    int64    `json:"shmSize,omitempty"`
	ExtraHosts []string `json:"extraHosts,omitempty"` // NAME=IP
	Secrets    []BuildSecret
	// AdditionalContexts maps a name to an absolute directory or to a
	// BuildKit source (docker-image://, a URL, target:).
	AdditionalContexts map[string]string `json:"additionalContexts,omitempty"`
	CacheFrom          []string          `json:"cacheFrom,omitempty"`
	CacheTo            []string          `json:"cacheTo,omitempty"`
	Platform           string            `json:"platform,omitempty"`
	// Always is pull_policy: build: build on every up.
	Always bool `json:"always,omitempty"`
	// Refusal says why the image cannot be built here (a platform that is
	// not the node's, a network a build cannot join). `drover config`
	// shows it as a warning; build and up refuse the service with it.
	Refusal *Error `json:"-"`
}

// BuildSecret is a secret that RUN --mount=type=secret,id=ID reads: a
// file's content or an environment variable's value.
type BuildSecret struct {
	ID   string `json:"id"`
	File string `json:"file,omitempty"`
	Env  string `json:"env,omitempty"`
}

// Names are every name of the built image: Image and Tags.
func (b BuildPlan) Names() []string { return append([]string{b.Image}, b.Tags...) }

// DefaultImageName is the image of a service that has build: and no
// image:, as Compose names it.
func DefaultImageName(project, service string) string {
	return strings.ToLower(project + "-" + service)
}

// nodePlatform is the platform builds run for: the node's own.
func nodePlatform() string { return "linux/" + runtime.GOARCH }

// BuildPlans returns a plan for each service of p with build:, sorted by
// service. It is pure and never fails: a service whose image cannot be
// built here has a plan with a Refusal, so that reading the file (drover
// config) still works.
func BuildPlans(p *types.Project) []BuildPlan {
	var out []BuildPlan
	for _, name := range sortedKeys(p.Services) {
		s := p.Services[name]
		if s.Build == nil {
			continue
		}
		plan, err := buildPlan(p, s)
		if err != nil {
			image := s.Image
			if image == "" {
				image = DefaultImageName(p.Name, s.Name)
			}
			plan = BuildPlan{Service: s.Name, Image: image, Refusal: err}
		}
		out = append(out, plan)
	}
	return out
}

func buildPlan(p *types.Project, s types.ServiceConfig) (BuildPlan, *Error) {
	b := s.Build
	fail := func(format string, args ...any) (BuildPlan, *Error) {
		return BuildPlan{}, &Error{Service: s.Name, Key: "build", Message: fmt.Sprintf(format, args...)}
	}
	plan := BuildPlan{
		Service: s.Name, Image: s.Image, Tags: cloneStrings(b.Tags),
		Target: b.Target, NoCache: b.NoCache, Pull: b.Pull,
		Labels: copyLabels(b.Labels), ShmSize: int64(b.ShmSize),
		CacheFrom: cloneStrings(b.CacheFrom), CacheTo: cloneStrings(b.CacheTo),
		DockerfileInline: b.DockerfileInline,
		Always:           strings.EqualFold(s.PullPolicy, "build"),
	}
	if plan.Image == "" {
		plan.Image = DefaultImageName(p.Name, s.Name)
	}
	ctx := b.Context
	if ctx == "" {
		ctx = "."
	}
	switch {
	case isRemoteContext(ctx):
		plan.Context, plan.RemoteContext = ctx, true
	case filepath.IsAbs(ctx):
		plan.Context = filepath.Clean(ctx)
	default:
		plan.Context = filepath.Join(p.WorkingDir, ctx)
	}
	if plan.DockerfileInline == "" && !plan.RemoteContext {
		df := b.Dockerfile
		if df == "" {
			df = "Dockerfile"
		}
		if !filepath.IsAbs(df) {
			df = filepath.Join(plan.Context, df)
		}
		plan.Dockerfile = df
	} else if plan.RemoteContext {
		plan.Dockerfile = b.Dockerfile
	}
	if len(b.Args) > 0 {
		plan.Args = map[string]string{}
		for k, v := range b.Args {
			if v != nil { // an argument without a value the environment lacks is left out, as Compose does
				plan.Args[k] = *v
			}
		}
	}
	switch b.Network {
	case "", "default":
	case "host", "none":
		plan.Network = b.Network
	default:
		return fail("network %q: a build runs on the host's network (default), host or none; project networks are not reachable from a build", b.Network)
	}
	for _, h := range b.ExtraHosts.AsList("=") {
		plan.ExtraHosts = append(plan.ExtraHosts, h)
	}
	sort.Strings(plan.ExtraHosts)
	for _, ref := range b.Secrets {
		def, ok := p.Secrets[ref.Source]
		if !ok {
			return fail("secret %q is not defined in the top-level secrets:", ref.Source)
		}
		id := ref.Target
		if id == "" {
			id = ref.Source
		}
		switch {
		case def.Environment != "":
			plan.Secrets = append(plan.Secrets, BuildSecret{ID: id, Env: def.Environment})
		case def.File != "":
			plan.Secrets = append(plan.Secrets, BuildSecret{ID: id, File: def.File})
		default:
			return fail("secret %q: a build secret comes from a file: or an environment:", ref.Source)
		}
	}
	if len(b.AdditionalContexts) > 0 {
		plan.AdditionalContexts = map[string]string{}
		for name, src := range b.AdditionalContexts {
			switch {
			case strings.HasPrefix(src, "docker-image://"), strings.HasPrefix(src, "target:"), isRemoteContext(src):
				plan.AdditionalContexts[name] = src
			case strings.HasPrefix(src, "service:"):
				other, ok := p.Services[strings.TrimPrefix(src, "service:")]
				if !ok {
					return fail("additional_contexts %q: service %q is not defined", name, strings.TrimPrefix(src, "service:"))
				}
				img := other.Image
				if img == "" {
					img = DefaultImageName(p.Name, other.Name)
				}
				plan.AdditionalContexts[name] = "docker-image://" + img
			case filepath.IsAbs(src):
				plan.AdditionalContexts[name] = filepath.Clean(src)
			default:
				plan.AdditionalContexts[name] = filepath.Join(plan.Context, src)
			}
		}
	}
	own := nodePlatform()
	// A service's own platform: that is not the node's is warned about
	// with the service (platformWarnings); here only build.platforms.
	for _, pl := range b.Platforms {
		if pl == "" {
			continue
		}
		if norm := strings.TrimSuffix(strings.ToLower(pl), "/v1"); norm != own && !strings.HasPrefix(norm, own+"/") {
			return fail("platform %q: Drover builds for the node's own platform (%s) only", pl, own)
		}
		plan.Platform = own
	}
	if b.Privileged {
		return fail("privileged builds are not supported")
	}
	for _, c := range append(append([]string{}, plan.CacheFrom...), plan.CacheTo...) {
		if _, err := ParseCacheEntry(c); err != nil {
			return fail("%v", err)
		}
	}
	return plan, nil
}

// isRemoteContext tells a URL (Git repository, tarball) from a path.
func isRemoteContext(s string) bool {
	return strings.Contains(s, "://") || strings.HasPrefix(s, "git@") || strings.HasPrefix(s, "github.com/")
}

// CacheEntry is one cache_from or cache_to entry: a type (registry, local,
// inline, ...) and its attributes, as BuildKit takes them.
type CacheEntry struct {
	Type  string
	Attrs map[string]string
}

// ParseCacheEntry reads "type=local,src=DIR" and the short form "REF" (a
// registry reference, type=registry,ref=REF), as Compose and buildx do.
func ParseCacheEntry(s string) (CacheEntry, error) {
	if !strings.Contains(s, "=") {
		return CacheEntry{Type: "registry", Attrs: map[string]string{"ref": s}}, nil
	}
	e := CacheEntry{Attrs: map[string]string{}}
	for _, field := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(field, "=")
		if !ok || k == "" {
			return CacheEntry{}, fmt.Errorf("cache entry %q: %q is not KEY=VALUE", s, field)
		}
		if k == "type" {
			e.Type = v
			continue
		}
		e.Attrs[k] = v
	}
	switch e.Type {
	case "local", "inline", "registry", "gha", "s3", "azblob":
	case "":
		return CacheEntry{}, fmt.Errorf("cache entry %q: no type= (local, inline, registry)", s)
	default:
		return CacheEntry{}, fmt.Errorf("cache entry %q: unknown type %q (local, inline, registry)", s, e.Type)
	}
	return e, nil
}
