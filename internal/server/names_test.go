package server

import (
	"errors"
	"strings"
	"testing"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/store"
)

func TestCheckContainerNames(t *testing.T) {
	snap := &store.Snapshot{
		Services: []api.Service{
			{Stack: "a", Spec: api.ServiceSpec{Name: "db", ContainerName: "shared-db"}},
			{Stack: "a", Spec: api.ServiceSpec{Name: "web", Replicas: 1}},
		},
		Tasks: []api.Task{
			{Stack: "a", Service: "web", Slot: 1, Status: api.TaskStatus{State: api.StateRunning}},
			{Stack: "a", Service: "old", Slot: 1, Status: api.TaskStatus{State: api.StateRemoved}},
		},
	}
	named := func(stack, service, name string) api.StackSpec {
		return api.StackSpec{Name: stack, Services: []api.ServiceSpec{{Name: service, ContainerName: name}}}
	}
	for _, tc := range []struct {
		spec api.StackSpec
		want string // "" allowed; else in the error
	}{
		{named("b", "db", "shared-db"), `service "db" of project "b": container_name "shared-db" is already in use by service "db" of project "a"`},
		{named("b", "x", "a-web-1"), `container_name "a-web-1" is already in use by a container of service "web" of project "a"`},
		{named("b", "x", "a-old-1"), ""},                                          // that container is gone
		{named("a", "db", "shared-db"), ""},                                       // the project's own service, redeployed
		{named("b", "x", "free"), ""},                                             // nobody has it
		{api.StackSpec{Name: "b", Services: []api.ServiceSpec{{Name: "db"}}}, ""}, // no container_name
	} {
		err := checkContainerNames(snap, tc.spec)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.spec.Services, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, api.ErrConflict)):
			t.Errorf("%+v: err = %v, want a conflict with %q", tc.spec.Services, err, tc.want)
		}
	}
}
