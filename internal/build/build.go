package build

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/session/secrets/secretsprovider"
	solvererrdefs "github.com/moby/buildkit/solver/errdefs"
	"github.com/moby/buildkit/util/progress/progressui"
	"github.com/tonistiigi/fsutil"
	"golang.org/x/sync/errgroup"

	"github.com/drover-org/drover/internal/compose"
	"github.com/drover-org/drover/internal/content"
)

// Options apply to every build of one command.
type Options struct {
	NoCache bool              // --no-cache
	Pull    bool              // --pull: FROM images from the registry, never a local copy
	Args    map[string]string // --build-arg, over the file's args
	// Progress is auto, tty, plain or quiet (-q).
	Progress string
	// Out gets the progress and, on failure, the Dockerfile lines at fault.
	Out io.Writer
	// Dial opens a connection to a node's buildkitd that first makes the
	// named FROM images ready there (api.Client.BuildSession).
	Dial func(ctx context.Context, baseImages []string) (net.Conn, error)
	// Store sends the built image's OCI archive to the cluster's content
	// store (api.Client.LoadImage).
	Store func(ctx context.Context, archive io.Reader) error
}

// Result is one built image.
type Result struct {
	Service string
	Image   string
	// Digest is the image manifest's digest.
	Digest string
}

// Error is a failed build: the service, BuildKit's error, and the
// Dockerfile lines it points at.
type Error struct {
	Service string
	Err     error
}

func (e *Error) Error() string {
	return fmt.Sprintf("service %q: build failed: %v", e.Service, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Order sorts plans so that a build that uses another service's image (an
// additional context service:NAME) comes after it.
func Order(plans []compose.BuildPlan) []compose.BuildPlan {
	byImage := map[string]int{}
	for i, p := range plans {
		byImage[p.Image] = i
	}
	done := make([]bool, len(plans))
	var out []compose.BuildPlan
	var visit func(i int, depth int)
	visit = func(i, depth int) {
		if done[i] || depth > len(plans) {
			return
		}
		for _, src := range sortedValues(plans[i].AdditionalContexts) {
			if j, ok := byImage[strings.TrimPrefix(src, "docker-image://")]; ok && strings.HasPrefix(src, "docker-image://") && j != i {
				visit(j, depth+1)
			}
		}
		if !done[i] {
			done[i] = true
			out = append(out, plans[i])
		}
	}
	for i := range plans {
		visit(i, 0)
	}
	return out
}

func sortedValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// Build builds each plan in turn (BuildKit runs a Dockerfile's stages in
// parallel within one build) and stops at the first failure, which is an
// *Error. A plan with a Refusal fails before anything is built.
func Build(ctx context.Context, plans []compose.BuildPlan, o Options) ([]Result, error) {
	for _, p := range plans {
		if p.Refusal != nil {
			return nil, p.Refusal
		}
	}
	var out []Result
	for _, p := range Order(plans) {
		r, err := buildOne(ctx, p, o)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

func buildOne(ctx context.Context, p compose.BuildPlan, o Options) (Result, error) {
	fail := func(err error) (Result, error) { return Result{}, &Error{Service: p.Service, Err: err} }
	args := map[string]string{}
	for k, v := range p.Args {
		args[k] = v
	}
	for k, v := range o.Args {
		args[k] = v
	}
	solve := bkclient.SolveOpt{
		Frontend:      "dockerfile.v0",
		FrontendAttrs: map[string]string{},
		LocalMounts:   map[string]fsutil.FS{},
	}
	attrs := solve.FrontendAttrs
	var dockerfile []byte
	cleanup := func() {}
	defer func() { cleanup() }()
	if p.RemoteContext {
		attrs["context"] = p.Context
		if p.Dockerfile != "" {
			attrs["filename"] = p.Dockerfile
		}
	} else {
		ctxFS, err := fsutil.NewFS(p.Context)
		if err != nil {
			return fail(fmt.Errorf("build context %s: %w", p.Context, err))
		}
		solve.LocalMounts["context"] = ctxFS
		dfPath := p.Dockerfile
		if p.DockerfileInline != "" {
			dir, err := os.MkdirTemp("", "drover-dockerfile-")
			if err != nil {
				return fail(err)
			}
			cleanup = func() { os.RemoveAll(dir) }
			dfPath = filepath.Join(dir, "Dockerfile")
			if err := os.WriteFile(dfPath, []byte(p.DockerfileInline), 0o600); err != nil {
				return fail(err)
			}
		}
		if dockerfile, err = os.ReadFile(dfPath); err != nil {
			return fail(fmt.Errorf("dockerfile: %w", err))
		}
		dfFS, err := fsutil.NewFS(filepath.Dir(dfPath))
		if err != nil {
			return fail(err)
		}
		solve.LocalMounts["dockerfile"] = dfFS
		attrs["filename"] = filepath.Base(dfPath)
	}
	for k, v := range args {
		attrs["build-arg:"+k] = v
	}
	for k, v := range p.Labels {
		attrs["label:"+k] = v
	}
	if p.Target != "" {
		attrs["target"] = p.Target
	}
	if p.NoCache || o.NoCache {
		attrs["no-cache"] = ""
	}
	// FROM images: the node's own copy (loaded, or built before) unless a
	// pull is asked for; BuildKit pulls what the node lacks.
	if p.Pull || o.Pull {
		attrs["image-resolve-mode"] = "pull"
	} else {
		attrs["image-resolve-mode"] = "local"
	}
	switch p.Network {
	case "host":
		attrs["force-network-mode"] = "host"
		solve.AllowedEntitlements = append(solve.AllowedEntitlements, "network.host")
	case "none":
		attrs["force-network-mode"] = "none"
	}
	if p.ShmSize > 0 {
		attrs["shm-size"] = strconv.FormatInt(p.ShmSize, 10)
	}
	if len(p.ExtraHosts) > 0 {
		attrs["add-hosts"] = strings.Join(p.ExtraHosts, ",")
	}
	if p.Platform != "" {
		attrs["platform"] = p.Platform
	}
	for _, name := range sortedKeys(p.AdditionalContexts) {
		src := p.AdditionalContexts[name]
		if filepath.IsAbs(src) {
			fs, err := fsutil.NewFS(src)
			if err != nil {
				return fail(fmt.Errorf("additional context %s: %w", name, err))
			}
			solve.LocalMounts["ctx-"+name] = fs
			src = "local:ctx-" + name
		}
		attrs["context:"+name] = src
	}
	for _, c := range p.CacheFrom {
		e, err := compose.ParseCacheEntry(c)
		if err != nil {
			return fail(err)
		}
		solve.CacheImports = append(solve.CacheImports, bkclient.CacheOptionsEntry{Type: e.Type, Attrs: e.Attrs})
	}
	for _, c := range p.CacheTo {
		e, err := compose.ParseCacheEntry(c)
		if err != nil {
			return fail(err)
		}
		solve.CacheExports = append(solve.CacheExports, bkclient.CacheOptionsEntry{Type: e.Type, Attrs: e.Attrs})
	}
	if len(p.Secrets) > 0 {
		var srcs []secretsprovider.Source
		for _, s := range p.Secrets {
			srcs = append(srcs, secretsprovider.Source{ID: s.ID, FilePath: s.File, Env: s.Env})
		}
		st, err := secretsprovider.NewStore(srcs)
		if err != nil {
			return fail(fmt.Errorf("build secrets: %w", err))
		}
		solve.Session = append(solve.Session, secretsprovider.NewSecretProvider(st))
	}

	var bases []string
	if dockerfile != nil && !(p.Pull || o.Pull) {
		var err error
		if bases, err = BaseImages(bytes.NewReader(dockerfile), args); err != nil {
			return fail(err)
		}
	}
	// Full names, as containerd and the cluster's store know images.
	var full []string
	for _, n := range p.Names() {
		if nn, err := content.NormalizeName(n); err == nil {
			n = nn
		}
		full = append(full, n)
	}
	names := strings.Join(full, ",")
	// Two exports in one solve: the node's containerd, and the archive for
	// the cluster's store, streamed as BuildKit writes it.
	pr, pw := io.Pipe()
	solve.Exports = []bkclient.ExportEntry{
		{Type: bkclient.ExporterImage, Attrs: map[string]string{"name": names, "unpack": "true"}},
		{Type: bkclient.ExporterOCI, Attrs: map[string]string{"name": names}, Output: func(map[string]string) (io.WriteCloser, error) { return pw, nil }},
	}

	c, err := bkclient.New(ctx, "", bkclient.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return o.Dial(ctx, bases)
	}))
	if err != nil {
		return fail(err)
	}
	defer c.Close()

	mode := progressui.DisplayMode(o.Progress)
	if mode == "" {
		mode = progressui.AutoMode
	}
	display, err := progressui.NewDisplay(o.Out, mode, progressui.WithPhase("Building "+p.Service))
	if err != nil {
		// Not a terminal after all: plain text.
		if display, err = progressui.NewDisplay(o.Out, progressui.PlainMode); err != nil {
			return fail(err)
		}
	}
	ch := make(chan *bkclient.SolveStatus)
	g, gctx := errgroup.WithContext(ctx)
	var resp *bkclient.SolveResponse
	g.Go(func() error {
		var err error
		resp, err = c.Solve(gctx, nil, solve, ch)
		pw.CloseWithError(err) // an archive cut short is never stored
		return err
	})
	g.Go(func() error {
		_, err := display.UpdateFrom(context.WithoutCancel(gctx), ch)
		return err
	})
	g.Go(func() error {
		err := o.Store(gctx, pr)
		pr.CloseWithError(err) // unblocks BuildKit's export if the upload failed
		return err
	})
	if err := g.Wait(); err != nil {
		printSources(o.Out, err)
		return fail(err)
	}
	return Result{Service: p.Service, Image: p.Image, Digest: resp.ExporterResponse["containerimage.digest"]}, nil
}

// printSources shows the Dockerfile lines a failed step came from, as
// docker build does.
func printSources(w io.Writer, err error) {
	for _, src := range solvererrdefs.Sources(err) {
		fmt.Fprintln(w)
		_ = src.Print(w)
	}
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
