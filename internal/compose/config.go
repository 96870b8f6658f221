package compose

import (
	"maps"

	"github.com/compose-spec/compose-go/v2/types"
)

// ConfigYAML renders compose-go's normalized model of the project, as
// `docker compose config` prints it, for `drover config`.
//
// Secret content never appears in it: compose-go already leaves it out,
// and Drover clears it on a copy as well, so that a change in compose-go
// cannot print a password. Configs keep their inline content, except
// content taken from the environment, which compose-go leaves out (the
// variable's name is shown).
func ConfigYAML(p *types.Project) ([]byte, error) {
	if p == nil {
		return nil, &Error{Message: "no Compose project"}
	}
	cp := *p
	if len(p.Secrets) > 0 {
		cp.Secrets = maps.Clone(p.Secrets)
		for name, s := range cp.Secrets {
			s.Content = ""
			if len(s.Extensions) > 0 {
				s.Extensions = maps.Clone(s.Extensions)
				delete(s.Extensions, types.SecretConfigXValue)
			}
			cp.Secrets[name] = s
		}
	}
	if len(p.Configs) > 0 {
		cp.Configs = maps.Clone(p.Configs)
		for name, c := range cp.Configs {
			if c.Environment != "" {
				c.Content = ""
			}
			cp.Configs[name] = c
		}
	}
	return cp.MarshalYAML()
}
