package server

import (
	"fmt"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/store"
)

// checkContainerNames refuses a container_name that a container of another
// project has, or will have once its service is placed: names are unique
// on the server, as on a Docker host, because other containers and the
// CLI find containers by them. Nothing of the project is written then.
func checkContainerNames(snap *store.Snapshot, spec api.StackSpec) error {
	wanted := map[string]string{} // container_name -> service of spec
	for _, sv := range spec.Services {
		if sv.ContainerName != "" {
			wanted[sv.ContainerName] = sv.Name
		}
	}
	if len(wanted) == 0 {
		return nil
	}
	clash := func(name, owner string) error {
		return api.Errorf(api.ErrConflict, "service %q of project %q: container_name %q is already in use by %s; choose another name or remove that container first; nothing was deployed",
			wanted[name], spec.Name, name, owner)
	}
	for _, sv := range snap.Services {
		if sv.Stack == spec.Name {
			continue
		}
		if _, ok := wanted[sv.Spec.ContainerName]; ok {
			return clash(sv.Spec.ContainerName, fmt.Sprintf("service %q of project %q", sv.Spec.Name, sv.Stack))
		}
	}
	for _, t := range snap.Tasks {
		if t.Stack == spec.Name || t.Status.State == api.StateRemoved {
			continue
		}
		if _, ok := wanted[t.Name()]; ok {
			return clash(t.Name(), fmt.Sprintf("a container of service %q of project %q", t.Service, t.Stack))
		}
	}
	return nil
}
