package compose

import (
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/drover-org/drover/api"
)

// Keys of a service volume (long syntax) that Drover honours; the others
// warn.
var (
	volumeMountKeys = map[string]bool{"type": true, "source": true, "target": true, "read_only": true, "bind": true, "volume": true, "tmpfs": true}
	bindKeys        = map[string]bool{"create_host_path": true}
	volumeKeys      = map[string]bool{"nocopy": true, "subpath": true}
	tmpfsKeys       = map[string]bool{"size": true, "mode": true}
	topVolumeKeys   = map[string]bool{"name": true, "external": true, "driver": true, "driver_opts": true, "labels": true}
)

// mounts maps volumes: (both syntaxes; compose-go turns the short one
// into the long one) and tmpfs: onto the service's mounts, sorted by
// target. compose-go has made relative bind sources absolute against the
// project directory; a source still relative is joined to it here too.
func (t *translator) mounts(s types.ServiceConfig, projectDir string) ([]api.Mount, error) {
	var out []api.Mount
	for i, v := range s.Volumes {
		key := "volumes"
		for _, k := range setFields(&v, volumeMountKeys) {
			t.warn(s.Name, key, "entry %d (%s): %s %s", i+1, v.Target, k, notSupported)
		}
		if v.Target == "" || !path.IsAbs(v.Target) {
			return nil, &Error{Service: s.Name, Key: key, Message: fmt.Sprintf("entry %d: target %q must be an absolute path in the container", i+1, v.Target)}
		}
		m := api.Mount{Type: v.Type, Source: v.Source, Target: v.Target, ReadOnly: v.ReadOnly}
		switch v.Type {
		case types.VolumeTypeBind:
			if m.Source == "" {
				return nil, &Error{Service: s.Name, Key: key, Message: fmt.Sprintf("entry %d (%s): a bind mount needs a source path on the host", i+1, v.Target)}
			}
			if !filepath.IsAbs(m.Source) {
				m.Source = filepath.Join(projectDir, m.Source)
			}
			if b := v.Bind; b != nil {
				m.CreateHostPath = bool(b.CreateHostPath)
				for _, k := range setFields(b, bindKeys) {
					t.warn(s.Name, key, "entry %d (%s): bind.%s %s", i+1, v.Target, k, notSupported)
				}
			}
		case types.VolumeTypeVolume:
			if b := v.Volume; b != nil {
				m.NoCopy, m.Subpath = b.NoCopy, b.Subpath
				for _, k := range setFields(b, volumeKeys) {
					t.warn(s.Name, key, "entry %d (%s): volume.%s %s", i+1, v.Target, k, notSupported)
				}
			}
		case types.VolumeTypeTmpfs:
			m.Source = ""
			if tf := v.Tmpfs; tf != nil {
				if tf.Size < 0 {
					return nil, &Error{Service: s.Name, Key: key, Message: fmt.Sprintf("entry %d (%s): tmpfs.size must not be negative", i+1, v.Target)}
				}
				m.TmpfsSize, m.TmpfsMode = int64(tf.Size), tf.Mode
				for _, k := range setFields(tf, tmpfsKeys) {
					t.warn(s.Name, key, "entry %d (%s): tmpfs.%s %s", i+1, v.Target, k, notSupported)
				}
			}
		default:
			t.warn(s.Name, key, "entry %d (%s): type %q %s", i+1, v.Target, v.Type, notSupportedValue)
			continue
		}
		out = append(out, m)
	}
	for i, spec := range s.Tmpfs {
		m, err := t.tmpfs(s.Name, i, spec)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	slices.SortStableFunc(out, func(a, b api.Mount) int { return strings.Compare(a.Target, b.Target) })
	return out, nil
}

// tmpfs parses an entry of the service-level tmpfs: list, written as
// docker run --tmpfs takes it: "/run" or "/run:size=64m,mode=1777" (mode
// in octal).
func (t *translator) tmpfs(service string, i int, spec string) (api.Mount, error) {
	target, opts, _ := strings.Cut(spec, ":")
	if !path.IsAbs(target) {
		return api.Mount{}, &Error{Service: service, Key: "tmpfs", Message: fmt.Sprintf("entry %d: %q must be an absolute path in the container", i+1, target)}
	}
	m := api.Mount{Type: api.MountTmpfs, Target: path.Clean(target)}
	if opts == "" {
		return m, nil
	}
	for _, o := range strings.Split(opts, ",") {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "size":
			var size types.UnitBytes
			if err := size.DecodeMapstructure(v); err != nil || size < 0 {
				return api.Mount{}, &Error{Service: service, Key: "tmpfs", Message: fmt.Sprintf("%s: size %q is not a size such as 64m", target, v)}
			}
			m.TmpfsSize = int64(size)
		case "mode":
			mode, err := strconv.ParseUint(v, 8, 32)
			if err != nil || mode > 0o7777 {
				return api.Mount{}, &Error{Service: service, Key: "tmpfs", Message: fmt.Sprintf("%s: mode %q is not an octal file mode such as 1777", target, v)}
			}
			m.TmpfsMode = uint32(mode)
		case "rw":
		case "ro":
			m.ReadOnly = true
		default:
			t.warn(service, "tmpfs", "%s: option %q %s", target, o, notSupportedValue)
		}
	}
	return m, nil
}

// volumes lists the top-level volumes that the services mount, sorted by
// key. Only the local driver exists on one host: another driver refuses
// the file, since the data would not be where the user expects it.
func (t *translator) volumes(p *types.Project, used map[string]bool) ([]api.VolumeSpec, error) {
	var out []api.VolumeSpec
	for _, name := range sortedKeys(used) {
		cfg, ok := p.Volumes[name]
		if !ok {
			continue // compose-go refuses undefined volumes; be safe anyway
		}
		key := "volumes." + name
		v := api.VolumeSpec{
			Name:       name,
			External:   bool(cfg.External),
			Driver:     cfg.Driver,
			DriverOpts: copyMap(cfg.DriverOpts),
			Labels:     copyLabels(cfg.Labels),
		}
		switch cfg.Driver {
		case "", "local":
		default:
			if !v.External {
				return nil, &Error{Key: key + ".driver", Message: fmt.Sprintf(
					"volume %q: driver %q is not supported: Drover runs local volumes only (remove driver:, or use driver: local with driver_opts)", name, cfg.Driver)}
			}
		}
		if v.External {
			v.ExternalName = cfg.Name
			if v.ExternalName == "" {
				v.ExternalName = name
			}
		} else if cfg.Name != "" && cfg.Name != p.Name+"_"+name {
			t.warn("", key+".name", "%s: Drover names the volume %q", notSupported, p.Name+"_"+name)
		}
		for _, k := range setFields(&cfg, topVolumeKeys) {
			t.warn("", key+"."+k, notSupported)
		}
		out = append(out, v)
	}
	return out, nil
}

func copyMap[M ~map[string]string](m M) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
