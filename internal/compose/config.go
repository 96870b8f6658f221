package compose

import (
	"github.com/compose-spec/compose-go/v2/types"
)

// ConfigYAML renders compose-go's normalized model of the project, as
// `docker compose config` prints it, for `drover config`.
func ConfigYAML(p *types.Project) ([]byte, error) {
	if p == nil {
		return nil, &Error{Message: "no Compose project"}
	}
	return p.MarshalYAML()
}
