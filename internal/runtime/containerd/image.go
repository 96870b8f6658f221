package containerd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"

	"github.com/drover-org/drover/internal/content"
	"github.com/drover-org/drover/internal/runtime"
)

// normalizeRef gives the full name an image is kept under, the same
// everywhere: "busybox" -> "docker.io/library/busybox:latest".
var normalizeRef = content.NormalizeName

// notPulledError says an image is neither local nor pullable. It is a
// runtime.ErrNotFound and keeps the pull's error.
type notPulledError struct {
	ref, name string
	cause     error
}

func (e *notPulledError) Error() string {
	name := e.ref
	if e.name != e.ref {
		name = fmt.Sprintf("%s (%s)", e.ref, e.name)
	}
	return fmt.Sprintf("image %s is not on this node and could not be pulled: %v; "+
		"load it with `drover image load` or check the name and the registry", name, e.cause)
}

func (e *notPulledError) Unwrap() []error { return []error{runtime.ErrNotFound, e.cause} }

// EnsureImage makes ref present and unpacked, pulling it when missing.
func (d *Driver) EnsureImage(ctx context.Context, ref string) error {
	_, err := d.ensureImage(d.ctx(ctx), ref)
	return err
}

func (d *Driver) ensureImage(ctx context.Context, ref string) (client.Image, error) {
	name, err := normalizeRef(ref)
	if err != nil {
		return nil, err
	}
	img, err := d.client.GetImage(ctx, name)
	switch {
	case err == nil:
		ok, err := img.IsUnpacked(ctx, d.cfg.Snapshotter)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, err)
		}
		if !ok {
			if err := img.Unpack(ctx, d.cfg.Snapshotter); err != nil {
				return nil, fmt.Errorf("unpacking image %s: %w", ref, err)
			}
		}
		return img, nil
	case !errdefs.IsNotFound(err):
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}

	return d.pull(ctx, ref, name)
}

// PullImage pulls ref from its registry even when a copy is here
// (pull_policy: always).
func (d *Driver) PullImage(ctx context.Context, ref string) error {
	name, err := normalizeRef(ref)
	if err != nil {
		return err
	}
	_, err = d.pull(d.ctx(ctx), ref, name)
	return err
}

func (d *Driver) pull(ctx context.Context, ref, name string) (client.Image, error) {
	start := time.Now()
	d.logger.Info("pulling image", "image", name)
	img, err := d.client.Pull(ctx, name,
		client.WithPullUnpack,
		client.WithPullSnapshotter(d.cfg.Snapshotter),
		client.WithResolver(newResolver(ctx, d.cfg.Credentials)))
	if err != nil {
		if errors.Is(err, docker.ErrInvalidAuthorization) || errdefs.IsUnauthorized(err) {
			err = fmt.Errorf("%w (the registry wants a login: `drover login %s -u USER --password-stdin`)", err, registryHost(name))
		}
		return nil, &notPulledError{ref: ref, name: name, cause: err}
	}
	d.logger.Info("pulled image", "image", name, "took", time.Since(start).Round(time.Millisecond))
	return img, nil
}

// newResolver talks to registries with timeouts on connecting and on each
// response's headers, so an unreachable registry fails a pull in seconds
// instead of hanging, while big layers may take as long as they need.
// Registries on localhost are spoken to in plain HTTP, all others in HTTPS.
// creds (may be nil) is asked for a login only when a registry challenges
// the pull; ctx bounds those calls.
func newResolver(ctx context.Context, creds func(ctx context.Context, host string) (string, string, error)) remotes.Resolver {
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          10,
	}
	hc := &http.Client{Transport: transport}
	authOpts := []docker.AuthorizerOpt{docker.WithAuthClient(hc)}
	if creds != nil {
		authOpts = append(authOpts, docker.WithAuthCreds(func(host string) (string, string, error) {
			user, secret, err := creds(ctx, host)
			if err != nil {
				return "", "", fmt.Errorf("credentials for registry %s: %w", host, err)
			}
			return user, secret, nil
		}))
	}
	return docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(
			docker.WithClient(hc),
			docker.WithAuthorizer(docker.NewDockerAuthorizer(authOpts...)),
			docker.WithPlainHTTP(docker.MatchLocalhost),
		),
	})
}

// registryHost is the registry part of a normalized image name
// ("127.0.0.1:5000/busybox:1" -> "127.0.0.1:5000").
func registryHost(name string) string {
	if named, err := reference.ParseNormalizedNamed(name); err == nil {
		return reference.Domain(named)
	}
	host, _, _ := strings.Cut(name, "/")
	return host
}

// imageConfig is what a container takes from its image.
type imageConfig struct {
	Entrypoint, Cmd []string
	StopSignal      string
	opt             oci.SpecOpts // env, working dir, user and args
}

func readImageConfig(ctx context.Context, img client.Image) (imageConfig, error) {
	ic, err := img.Spec(ctx)
	if err != nil {
		return imageConfig{}, fmt.Errorf("image %s: reading its config: %w", img.Name(), err)
	}
	return imageConfig{
		Entrypoint: ic.Config.Entrypoint,
		Cmd:        ic.Config.Cmd,
		StopSignal: ic.Config.StopSignal,
		opt:        oci.WithImageConfig(img),
	}, nil
}

// Import reads an OCI image-layout archive or a docker-save archive, names
// its images by their annotations (OCI) or RepoTags (docker), unpacks them
// and returns them.
func (d *Driver) Import(ctx context.Context, r io.Reader) ([]runtime.Image, error) {
	ctx = d.ctx(ctx)
	// Layers stay as the archive has them (docker save's are uncompressed):
	// compressing them would cost more than the disk it saves.
	imported, err := d.client.Import(ctx, r, client.WithImageRefTranslator(ociRefName))
	if err != nil {
		return nil, fmt.Errorf("importing image archive (an OCI image layout or `docker save` tar): %w", err)
	}
	seen := map[string]bool{}
	var out []runtime.Image
	for _, im := range imported {
		im, err := d.normalizeName(ctx, im)
		if err != nil {
			return nil, err
		}
		if seen[im.Name] {
			continue
		}
		seen[im.Name] = true
		img := client.NewImage(d.client, im)
		if err := img.Unpack(ctx, d.cfg.Snapshotter); err != nil {
			return nil, fmt.Errorf("unpacking imported image %s: %w", im.Name, err)
		}
		out = append(out, d.toImage(ctx, img))
	}
	if len(out) == 0 {
		return nil, errors.New("the image archive names no image: an OCI archive needs an " +
			images.AnnotationImageName + " or org.opencontainers.image.ref.name annotation with a full reference " +
			"in index.json, a docker-save archive RepoTags in manifest.json")
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ociRefName turns an org.opencontainers.image.ref.name annotation into an
// image name. A bare tag ("latest"), which the OCI spec allows, names no
// repository and so no image.
func ociRefName(name string) string {
	if !strings.ContainsAny(name, "/:@") {
		return ""
	}
	n, err := normalizeRef(name)
	if err != nil {
		return ""
	}
	return n
}

// normalizeName renames an imported image whose name is not in the form
// EnsureImage looks up (io.containerd.image.name is taken as written).
func (d *Driver) normalizeName(ctx context.Context, im images.Image) (images.Image, error) {
	name, err := normalizeRef(im.Name)
	if err != nil {
		return images.Image{}, fmt.Errorf("imported image: %w", err)
	}
	if name == im.Name {
		return im, nil
	}
	is := d.client.ImageService()
	renamed := images.Image{Name: name, Target: im.Target, Labels: im.Labels}
	got, err := is.Update(ctx, renamed, "target")
	if errdefs.IsNotFound(err) {
		got, err = is.Create(ctx, renamed)
	}
	if err != nil {
		return images.Image{}, fmt.Errorf("naming imported image %s: %w", name, err)
	}
	if err := is.Delete(ctx, im.Name); err != nil && !errdefs.IsNotFound(err) {
		return images.Image{}, fmt.Errorf("renaming imported image %s: %w", im.Name, err)
	}
	return got, nil
}

// List returns the images of the namespace.
func (d *Driver) List(ctx context.Context) ([]runtime.Image, error) {
	ctx = d.ctx(ctx)
	imgs, err := d.client.ListImages(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing images: %w", err)
	}
	out := make([]runtime.Image, 0, len(imgs))
	for _, img := range imgs {
		out = append(out, d.toImage(ctx, img))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (d *Driver) toImage(ctx context.Context, img client.Image) runtime.Image {
	meta := img.Metadata()
	size, err := img.Size(ctx)
	if err != nil {
		d.logger.Debug("image size", "image", meta.Name, "err", err)
	}
	return runtime.Image{
		Name:      meta.Name,
		Digest:    meta.Target.Digest.String(),
		Size:      size,
		CreatedAt: meta.CreatedAt,
	}
}
