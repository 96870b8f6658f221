package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/store"
)

// assignView is what the agents' long polls read at one store revision:
// the snapshot, its tasks by node, the endpoints of running tasks by
// network and the published ports, computed once and shared by the polls
// of every node. It is read only.
type assignView struct {
	snap      *store.Snapshot
	byNode    map[string][]int          // node -> indexes into snap.Tasks
	endpoints map[string][]api.Endpoint // network full name -> endpoints, by IP
	ingress   []api.IngressPort
}

func newAssignView(snap *store.Snapshot) *assignView {
	v := &assignView{snap: snap, byNode: map[string][]int{}, endpoints: map[string][]api.Endpoint{}, ingress: ingressPorts(snap)}
	for i := range snap.Tasks {
		t := &snap.Tasks[i]
		if t.NodeID != "" {
			v.byNode[t.NodeID] = append(v.byNode[t.NodeID], i)
		}
		if t.DesiredState != api.DesiredRunning || t.Status.State != api.StateRunning {
			continue
		}
		for _, n := range t.Networks {
			ip := t.Status.Addresses[n.Network.FullName]
			if ip == "" {
				continue
			}
			names := []string{t.Name(), t.Hostname()}
			service := t.Service
			if h := t.Status.Health; h == api.HealthStarting || h == api.HealthUnhealthy {
				// Not ready for traffic: the service name and aliases leave
				// it out; its own names still answer.
				service = ""
			} else {
				names = append(names, n.Aliases...)
			}
			full := n.Network.FullName
			v.endpoints[full] = append(v.endpoints[full], api.Endpoint{Network: full, Service: service, Names: names, IP: ip,
				IP6: t.Status.Addresses6[full]})
		}
	}
	for _, eps := range v.endpoints {
		sort.SliceStable(eps, func(i, j int) bool { return eps[i].IP < eps[j].IP })
	}
	return v
}

// For computes what node id is to run and what its DNS needs.
func (v *assignView) For(id string) api.Assignments {
	a := api.Assignments{Revision: v.snap.Revision, Tasks: []api.Task{}, Endpoints: []api.Endpoint{}, DeleteVolumes: v.snap.VolumeDeletes}
	nets := map[string]bool{}
	for _, i := range v.byNode[id] {
		t := v.snap.Tasks[i]
		t.Networks = append([]api.Attachment(nil), t.Networks...) // overlaysFor rewrites them
		a.Tasks = append(a.Tasks, t)
		if t.DesiredState == api.DesiredRunning {
			for _, n := range t.Networks {
				nets[n.Network.FullName] = true
			}
		}
	}
	names := make([]string, 0, len(nets))
	for n := range nets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		a.Endpoints = append(a.Endpoints, v.endpoints[n]...)
	}
	a.Overlays = overlaysFor(v.snap, id, a.Tasks)
	a.Ingress = v.ingress
	// The token covers what the agent acts on, not the revision, so
	// unrelated writes do not wake every agent.
	b, _ := json.Marshal(struct {
		T []api.Task
		E []api.Endpoint
		V []string
		O []api.Overlay
		I []api.IngressPort
	}{a.Tasks, a.Endpoints, a.DeleteVolumes, a.Overlays, a.Ingress})
	sum := sha256.Sum256(b)
	a.Token = hex.EncodeToString(sum[:16])
	return a
}

// AssignmentsFor computes what node id is to run and what its DNS needs.
func AssignmentsFor(snap *store.Snapshot, id string) api.Assignments {
	return newAssignView(snap).For(id)
}

// viewAtLeast gives the shared view of a revision of rev or later: the
// last one made if it is recent enough, else a new one. Polls woken by the
// same change wait for the one that reads it instead of each reading the
// whole store.
func (s *Server) viewAtLeast(ctx context.Context, rev int64) (*assignView, error) {
	for {
		s.views.mu.Lock()
		if v := s.views.last; v != nil && v.snap.Revision >= rev {
			s.views.mu.Unlock()
			return v, nil
		}
		if ch := s.views.loading; ch != nil {
			s.views.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		ch := make(chan struct{})
		s.views.loading = ch
		s.views.mu.Unlock()

		snap, err := s.store.Snapshot(ctx)
		var v *assignView
		if err == nil {
			v = newAssignView(snap)
		}
		s.views.mu.Lock()
		s.views.loading = nil
		if v != nil && (s.views.last == nil || v.snap.Revision > s.views.last.snap.Revision) {
			s.views.last = v
		}
		close(ch)
		s.views.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if v.snap.Revision >= rev {
			return v, nil
		}
	}
}
