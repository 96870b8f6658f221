package imagebuild

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/drover-org/drover/api"
)

// DefaultRef names built images when the caller gives no reference.
const DefaultRef = "drover.local/busybox:latest"

// DefaultBusybox is where the busybox-static Debian package puts the binary.
const DefaultBusybox = "/bin/busybox"

// DefaultEnv is the image Env when Options.Env is nil.
var DefaultEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

// epoch is the timestamp of every file and history entry: fixed so that the
// same inputs give the same digest.
var epoch = time.Unix(0, 0).UTC()

// Options describe an image to build. The zero value is a busybox image
// running sh.
type Options struct {
	// Busybox is the path of the static busybox binary; default /bin/busybox.
	Busybox string
	// Files are extra files by absolute path in the image. They replace a
	// default file of the same path (such as /etc/passwd); missing parent
	// directories are created.
	Files map[string]File
	// Env is the image config Env; nil means DefaultEnv.
	Env []string
	// Cmd is the image config Cmd. Nil means ["sh"], unless Entrypoint is
	// set: as with Docker, an Entrypoint without a Cmd gets no Cmd (it would
	// otherwise be run with "sh" as its argument).
	Cmd        []string
	Entrypoint []string
	WorkingDir string
	// ExposedPorts are "port/proto" ("80/tcp"); a bare port means tcp.
	ExposedPorts []string
	// Healthcheck is the image's HEALTHCHECK, stored in the config as Docker
	// stores it.
	Healthcheck *Healthcheck
	// Padding, when positive, adds a second layer holding /padding.bin of
	// this many incompressible bytes, for benchmarks of big images. The
	// bytes come from a fixed-seed stream, so the digest stays reproducible.
	Padding int64
}

// File is a regular file to put in the image.
type File struct {
	// Mode holds the permission bits (including setuid, setgid and sticky);
	// zero means 0644.
	Mode int64
	Data []byte
}

// Healthcheck is an image HEALTHCHECK. Test follows Docker: {"CMD", args...},
// {"CMD-SHELL", command} or {"NONE"}.
type Healthcheck struct {
	Test        []string
	Interval    time.Duration
	Timeout     time.Duration
	StartPeriod time.Duration
	Retries     int
}

// Build returns a linux image for runtime.GOARCH with one layer (the busybox
// root filesystem) and, if opts.Padding > 0, a second padding layer. Invalid
// options give an error wrapping api.ErrInvalid.
func Build(opts Options) (v1.Image, error) {
	if opts.Busybox == "" {
		opts.Busybox = DefaultBusybox
	}
	if opts.Padding < 0 {
		return nil, fmt.Errorf("image padding %d: must not be negative: %w", opts.Padding, api.ErrInvalid)
	}
	cfg, err := imageConfig(opts)
	if err != nil {
		return nil, err
	}
	busybox, err := os.ReadFile(opts.Busybox)
	if err != nil {
		return nil, fmt.Errorf("reading busybox (install the busybox-static package or pass its path): %w", err)
	}
	root, err := rootFS(busybox, applets(opts.Busybox), opts.Files)
	if err != nil {
		return nil, err
	}
	rootLayer, err := root.layer()
	if err != nil {
		return nil, fmt.Errorf("root filesystem layer: %w", err)
	}

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: runtime.GOARCH,
		OS:           "linux",
		Created:      v1.Time{Time: epoch},
		Config:       cfg,
		RootFS:       v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, err
	}
	adds := []mutate.Addendum{{
		Layer: rootLayer,
		History: v1.History{
			Created:   v1.Time{Time: epoch},
			CreatedBy: "drover imagebuild: busybox root filesystem",
		},
	}}
	if opts.Padding > 0 {
		pad, err := paddingLayer(opts.Padding)
		if err != nil {
			return nil, fmt.Errorf("padding layer: %w", err)
		}
		adds = append(adds, mutate.Addendum{
			Layer: pad,
			History: v1.History{
				Created:   v1.Time{Time: epoch},
				CreatedBy: fmt.Sprintf("drover imagebuild: %d bytes of padding", opts.Padding),
			},
		})
	}
	return mutate.Append(img, adds...)
}

// imageConfig turns the options into the image's run configuration.
func imageConfig(opts Options) (v1.Config, error) {
	cfg := v1.Config{
		Env:        opts.Env,
		Cmd:        opts.Cmd,
		Entrypoint: opts.Entrypoint,
		WorkingDir: opts.WorkingDir,
	}
	if cfg.Env == nil {
		cfg.Env = append([]string(nil), DefaultEnv...)
	}
	if cfg.Cmd == nil && cfg.Entrypoint == nil {
		cfg.Cmd = []string{"sh"}
	}
	if len(opts.ExposedPorts) > 0 {
		cfg.ExposedPorts = make(map[string]struct{}, len(opts.ExposedPorts))
		for _, p := range opts.ExposedPorts {
			port, err := normalizePort(p)
			if err != nil {
				return v1.Config{}, err
			}
			cfg.ExposedPorts[port] = struct{}{}
		}
	}
	if h := opts.Healthcheck; h != nil {
		if h.Interval < 0 || h.Timeout < 0 || h.StartPeriod < 0 || h.Retries < 0 {
			return v1.Config{}, fmt.Errorf("image healthcheck: durations and retries must not be negative: %w", api.ErrInvalid)
		}
		cfg.Healthcheck = &v1.HealthConfig{
			Test:        h.Test,
			Interval:    h.Interval,
			Timeout:     h.Timeout,
			StartPeriod: h.StartPeriod,
			Retries:     h.Retries,
		}
	}
	return cfg, nil
}

// normalizePort checks "port[/proto]" and returns "port/proto", as Docker
// stores exposed ports.
func normalizePort(s string) (string, error) {
	port, proto, found := strings.Cut(s, "/")
	if !found {
		proto = "tcp"
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("exposed port %q: port must be 1-65535: %w", s, api.ErrInvalid)
	}
	switch proto {
	case "tcp", "udp", "sctp":
	default:
		return "", fmt.Errorf("exposed port %q: protocol must be tcp, udp or sctp: %w", s, api.ErrInvalid)
	}
	return strconv.Itoa(n) + "/" + proto, nil
}
