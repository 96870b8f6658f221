package compose

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/drover-org/drover/api"
)

// Secrets and configs: the client reads their content (files, environment
// variables, inline content) and sends it in the StackSpec. Secret content
// is never written into a warning or an error, and ConfigYAML leaves it
// out: only names, keys and file paths are ever shown.

// maxContent bounds a secret or config, as swarm does (500 KB): the
// content travels in the spec and is stored by the server.
const maxContent = 500 << 10

// topFileObjectKeys are the keys of a top-level secret or config that
// Drover honours; the others warn.
var topFileObjectKeys = map[string]bool{"name": true, "file": true, "environment": true, "content": true, "external": true}

// fileRefs maps a service's secrets: or configs: entries. compose-go has
// turned the short syntax into the long one and set a secret's default
// target (/run/secrets/<source>); a relative secret target is below
// /run/secrets, as in Docker Compose. A config's target stays empty when
// unset: the runtime puts it at /<source>.
func fileRefs(service, key string, refs []types.FileReferenceConfig) ([]api.FileRef, error) {
	var out []api.FileRef
	for _, r := range refs {
		f := api.FileRef{Source: r.Source, Target: r.Target, UID: r.UID, GID: r.GID}
		if key == "secrets" && f.Target != "" && !path.IsAbs(f.Target) {
			f.Target = "/run/secrets/" + f.Target
		}
		if r.Mode != nil {
			if *r.Mode < 0 || *r.Mode > 0o7777 {
				return nil, &Error{Service: service, Key: key, Message: fmt.Sprintf("%s: mode %o is not a file mode", r.Source, int64(*r.Mode))}
			}
			f.Mode = uint32(*r.Mode)
		}
		out = append(out, f)
	}
	return out, nil
}

func secretRefs(s types.ServiceConfig) ([]api.FileRef, error) {
	refs := make([]types.FileReferenceConfig, len(s.Secrets))
	for i, r := range s.Secrets {
		refs[i] = types.FileReferenceConfig(r)
	}
	return fileRefs(s.Name, "secrets", refs)
}

func configRefs(s types.ServiceConfig) ([]api.FileRef, error) {
	refs := make([]types.FileReferenceConfig, len(s.Configs))
	for i, r := range s.Configs {
		refs[i] = types.FileReferenceConfig(r)
	}
	return fileRefs(s.Name, "configs", refs)
}

// fileObjects lists the top-level secrets (kind "secrets") or configs that
// the services use, sorted by key, with the content that does not need a
// file: from the project's environment, or inline. Files are read by
// readContents, so that Translate stays pure.
func (t *translator) fileObjects(p *types.Project, kind string, used map[string]bool, objs map[string]types.FileObjectConfig) ([]api.SecretSpec, error) {
	var out []api.SecretSpec
	for _, name := range sortedKeys(used) {
		c, ok := objs[name]
		if !ok {
			continue // compose-go refuses undefined secrets and configs
		}
		key := kind + "." + name
		spec := api.SecretSpec{Name: name, External: bool(c.External)}
		for _, k := range setFields(&c, topFileObjectKeys) {
			t.warn("", key+"."+k, notSupported)
		}
		switch {
		case spec.External:
			if c.Name != "" && c.Name != name {
				t.warn("", key+".name", "%s: Drover looks the external %s up by its key %q", notSupported, singular(kind), name)
			}
		case c.Environment != "":
			v, ok := p.Environment[c.Environment]
			if !ok {
				return nil, &Error{Key: key + ".environment", Message: fmt.Sprintf(
					"%s %q: environment variable %s is not set", singular(kind), name, c.Environment)}
			}
			spec.Content = []byte(v)
		case c.File != "":
			// read by readContents
		case kind == "configs" && c.Content != "":
			spec.Content = []byte(c.Content)
		case kind == "secrets" && c.Content != "":
			// compose-go's x-#value: inline content written in the file
			spec.Content = []byte(c.Content)
		default:
			return nil, &Error{Key: key, Message: fmt.Sprintf(
				"%s %q has no content: set file:, environment:%s or external: true", singular(kind), name, map[bool]string{true: ", content:"}[kind == "configs"])}
		}
		if len(spec.Content) > maxContent {
			return nil, &Error{Key: key, Message: fmt.Sprintf("%s %q is larger than %d KB", singular(kind), name, maxContent>>10)}
		}
		out = append(out, spec)
	}
	return out, nil
}

func singular(kind string) string { return kind[:len(kind)-1] }

// readContents reads the file: of each secret and config of spec that has
// one. A file that is missing, not a regular file or too large is an
// *Error on the file: key; its content is never part of a message.
func readContents(p *types.Project, spec *api.StackSpec) error {
	read := func(kind string, list []api.SecretSpec, file func(string) string) error {
		for i := range list {
			s := &list[i]
			f := file(s.Name)
			if s.External || f == "" {
				continue
			}
			if !filepath.IsAbs(f) {
				f = filepath.Join(p.WorkingDir, f)
			}
			b, err := readBounded(f, maxContent)
			if err != nil {
				return &Error{Key: kind + "." + s.Name + ".file", Message: fmt.Sprintf("%s %q: %s: %s", singular(kind), s.Name, f, err)}
			}
			s.Content = b
		}
		return nil
	}
	if err := read("secrets", spec.Secrets, func(n string) string { return p.Secrets[n].File }); err != nil {
		return err
	}
	return read("configs", spec.Configs, func(n string) string { return p.Configs[n].File })
}

// readBounded reads a regular file of at most limit bytes. It checks the
// kind of file before opening it: opening a FIFO would block.
func readBounded(name string, limit int64) ([]byte, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return nil, errors.New(readError(err))
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("larger than %d KB", limit>>10)
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, errors.New(readError(err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, errors.New(readError(err))
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("larger than %d KB", limit>>10)
	}
	return b, nil
}
