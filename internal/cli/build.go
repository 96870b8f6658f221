package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/build"
	"github.com/drover-org/drover/internal/compose"
	"github.com/drover-org/drover/internal/content"
)

// buildFlags are the build options of `drover build` and `drover up`.
type buildFlags struct {
	noCache, pull, quiet bool
	args                 []string
	progress, node       string
}

func (f *buildFlags) register(cmd *cobra.Command, all bool) {
	cmd.Flags().StringVar(&f.node, "builder-node", "", "build on this node (ID or hostname; default: the server's own, else the first ready node)")
	cmd.Flags().StringVar(&f.progress, "build-progress", "auto", "build progress: auto, tty, plain or quiet")
	if !all {
		return
	}
	cmd.Flags().BoolVar(&f.noCache, "no-cache", false, "do not use the build cache")
	cmd.Flags().BoolVar(&f.pull, "pull", false, "always pull FROM images from their registry")
	cmd.Flags().StringArrayVar(&f.args, "build-arg", nil, "build argument KEY=VALUE (repeatable), over the file's args")
	cmd.Flags().BoolVarP(&f.quiet, "quiet", "q", false, "print nothing but errors")
}

func (f *buildFlags) options(c *api.Client, out io.Writer) (build.Options, error) {
	args := map[string]string{}
	for _, a := range f.args {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			// As docker build: KEY alone takes its value from the environment.
			var set bool
			if v, set = os.LookupEnv(k); !set {
				continue
			}
		}
		if k == "" {
			return build.Options{}, fmt.Errorf("--build-arg %q: want KEY=VALUE", a)
		}
		args[k] = v
	}
	progress := f.progress
	if f.quiet {
		progress = "quiet"
	}
	switch progress {
	case "auto":
		if fd, ok := out.(interface{ Fd() uintptr }); !ok || !term.IsTerminal(int(fd.Fd())) {
			progress = "plain"
		}
	case "tty", "plain", "quiet":
	default:
		return build.Options{}, fmt.Errorf("--build-progress %q: want auto, tty, plain or quiet", f.progress)
	}
	return build.Options{
		NoCache: f.noCache, Pull: f.pull, Args: args, Progress: progress, Out: out,
		Dial: func(ctx context.Context, bases []string) (net.Conn, error) {
			return c.BuildSession(ctx, f.node, bases)
		},
		Store: func(ctx context.Context, r io.Reader) error {
			_, err := c.LoadImage(ctx, r)
			return err
		},
	}, nil
}

func buildCommand(g *Globals) *cobra.Command {
	var f buildFlags
	cmd := &cobra.Command{
		Use:   "build [SERVICE...]",
		Short: "Build the images of services that have build:",
		Long: "Builds each named service's image (all services with build: when none is named) with BuildKit on a node, " +
			"and stores it in the cluster so that every node can run it.",
		RunE: func(cmd *cobra.Command, services []string) error {
			ctx := cmd.Context()
			res, err := g.LoadProject(ctx)
			if err != nil {
				return err
			}
			printWarnings(g, res.Warnings)
			plans, err := selectPlans(res, services)
			if err != nil {
				return err
			}
			if len(plans) == 0 {
				if !f.quiet {
					fmt.Fprintln(g.Err, "No service to build: none has build:")
				}
				return nil
			}
			c, err := g.Client()
			if err != nil {
				return err
			}
			opts, err := f.options(c, g.Err)
			if err != nil {
				return err
			}
			built, err := build.Build(ctx, plans, opts)
			if err != nil {
				return err
			}
			if !f.quiet {
				for _, b := range built {
					fmt.Fprintf(g.Err, " ✔ Service %s  Built  %s\n", b.Service, b.Image)
				}
			}
			return nil
		},
	}
	f.register(cmd, true)
	return cmd
}

func printWarnings(g *Globals, ws []compose.Warning) {
	for _, w := range ws {
		fmt.Fprintln(g.Err, "WARN", w.String())
	}
}

// selectPlans picks the plans of the named services (all when none is
// named); a named service that does not exist, or has no build:, is an
// error.
func selectPlans(res *compose.Result, services []string) ([]compose.BuildPlan, error) {
	if len(services) == 0 {
		return res.Builds, nil
	}
	var out []compose.BuildPlan
	for _, name := range services {
		i := slices.IndexFunc(res.Builds, func(p compose.BuildPlan) bool { return p.Service == name })
		if i < 0 {
			if !slices.ContainsFunc(res.Spec.Services, func(s api.ServiceSpec) bool { return s.Name == name }) {
				return nil, fmt.Errorf("no such service: %s", name)
			}
			return nil, fmt.Errorf("service %q has no build: section", name)
		}
		out = append(out, res.Builds[i])
	}
	return out, nil
}

// upBuilds are how up treats services with build:: build every one
// (--build), none (--no-build), or (by default) those whose image the
// cluster lacks and those with pull_policy: build.
type upBuilds struct {
	always, never bool
	flags         buildFlags
}

// buildForUp builds what up needs, then records each built service's
// image digest in the spec, so that a changed image recreates exactly
// its service. Nothing is deployed when a build fails.
func buildForUp(ctx context.Context, g *Globals, c *api.Client, res *compose.Result, o upBuilds) error {
	if len(res.Builds) == 0 {
		return nil
	}
	images, err := c.Images(ctx)
	if err != nil {
		return fmt.Errorf("listing the cluster's images: %w", err)
	}
	digests := storedDigests(images)
	var todo []compose.BuildPlan
	for _, p := range res.Builds {
		_, have := digests[normalized(p.Image)]
		switch {
		case o.never:
			if !have {
				return fmt.Errorf("service %q: image %s is not built and --no-build was given: run drover build %s", p.Service, p.Image, p.Service)
			}
		case o.always || p.Always || !have:
			todo = append(todo, p)
		}
	}
	if len(todo) > 0 {
		opts, err := o.flags.options(c, g.Err)
		if err != nil {
			return err
		}
		built, err := build.Build(ctx, todo, opts)
		if err != nil {
			return fmt.Errorf("%w; nothing of project %q was deployed or changed", err, res.Spec.Name)
		}
		for _, b := range built {
			fmt.Fprintf(g.Err, " ✔ Service %s  Built\n", b.Service)
			digests[normalized(b.Image)] = b.Digest
		}
	}
	for i := range res.Spec.Services {
		s := &res.Spec.Services[i]
		if slices.ContainsFunc(res.Builds, func(p compose.BuildPlan) bool { return p.Service == s.Name }) {
			s.ImageDigest = digests[normalized(s.Image)]
		}
	}
	return nil
}

// storedDigests maps the normalized names of the images in the cluster's
// store to their digests.
func storedDigests(images []api.Image) map[string]string {
	out := map[string]string{}
	for _, im := range images {
		if im.Stored {
			out[normalized(im.Name)] = im.Digest
		}
	}
	return out
}

func normalized(ref string) string {
	if n, err := content.NormalizeName(ref); err == nil {
		return n
	}
	return ref
}
