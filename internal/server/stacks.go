package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"

	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/store"
)

func (s *Server) deployStack(w http.ResponseWriter, r *http.Request) {
	var spec api.StackSpec
	if err := decodeBody(r, &spec); err != nil {
		writeError(w, err)
		return
	}
	if name := r.PathValue("name"); spec.Name != name {
		writeError(w, api.Errorf(api.ErrInvalid, "project name in the path (%q) and in the body (%q) differ", name, spec.Name))
		return
	}
	ctx, cancel := ctxTimeout(r, 30*time.Second)
	defer cancel()
	q := r.URL.Query()
	res, err := s.Deploy(ctx, spec, DeployOptions{
		RemoveOrphans: q.Get("removeOrphans") == "true", ForceRecreate: q.Get("forceRecreate") == "true",
		NoRecreate: q.Get("noRecreate") == "true", NoStart: q.Get("noStart") == "true",
		Confirm: q.Get("confirm") == "true",
	})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// DeployOptions are `up`'s flags that the server acts on.
type DeployOptions struct {
	RemoveOrphans bool // delete services the spec no longer names
	ForceRecreate bool // replace every container, changed or not
	NoRecreate    bool // keep existing services' containers even if changed
	NoStart       bool // new services are created stopped
	Confirm       bool // hold every update at its canaries until promoted
}

// Deploy creates or updates a stack in one transaction: either all of it is
// written or none.
func (s *Server) Deploy(ctx context.Context, spec api.StackSpec, opts DeployOptions) (api.DeployResult, error) {
	if err := ValidateSpec(spec); err != nil {
		return api.DeployResult{}, err
	}
	for attempt := 0; ; attempt++ {
		snap, err := s.store.Snapshot(ctx)
		if err != nil {
			return api.DeployResult{}, err
		}
		txn, res, err := s.planDeploy(snap, spec, opts)
		if err != nil {
			return api.DeployResult{}, err
		}
		err = s.store.Commit(ctx, txn)
		if errors.Is(err, api.ErrConflict) && attempt < 5 {
			continue
		}
		if errors.Is(err, api.ErrInvalid) {
			return api.DeployResult{}, api.Errorf(api.ErrInvalid, "project %q is too large to deploy in one piece (%d services, %d secrets and configs): %v; nothing was deployed", spec.Name, len(spec.Services), len(spec.Secrets)+len(spec.Configs), err)
		}
		if err != nil {
			return api.DeployResult{}, err
		}
		s.log.Info("stack deployed", "stack", spec.Name, "changed", res.Changed, "orphans", res.Orphans)
		s.emit(api.Event{Type: "stack", Action: "deploy", ID: spec.Name, Stack: spec.Name})
		for _, c := range res.Changed {
			s.emit(api.Event{Type: "service", Action: "update", ID: spec.Name + "/" + c, Stack: spec.Name, Service: c})
		}
		s.Kick()
		return res, nil
	}
}

func (s *Server) planDeploy(snap *store.Snapshot, spec api.StackSpec, opts DeployOptions) (*store.Txn, api.DeployResult, error) {
	now := s.cfg.Now().UTC()
	var res api.DeployResult
	txn := &store.Txn{}
	stackKey := store.StackKey(spec.Name)
	txn.Unchanged(stackKey, snap.ModRevisions[stackKey])

	st, exists := snap.Stacks[spec.Name]
	if exists && st.Removing {
		return nil, res, api.Errorf(api.ErrConflict, "project %q is being taken down; wait for `drover down` to finish", spec.Name)
	}
	if !exists {
		st = api.Stack{Name: spec.Name, CreatedAt: now}
	}
	st.UpdatedAt = now

	if err := checkPortConflicts(snap, spec); err != nil {
		return nil, res, err
	}
	if err := checkContainerNames(snap, spec); err != nil {
		return nil, res, err
	}

	// Secrets and configs: content under keys of their own, never in a
	// listing; their digests go into the specs that use them, so a
	// changed secret recreates its containers.
	digests := map[string]string{}
	keep := map[string]bool{}
	for kind, list := range map[string][]api.SecretSpec{"secret": spec.Secrets, "config": spec.Configs} {
		for _, sec := range list {
			if sec.External {
				return nil, res, api.Errorf(api.ErrInvalid, "%s %q: external %ss are not supported yet; give its file, environment or content", kind, sec.Name, kind)
			}
			sum := sha256.Sum256(sec.Content)
			digests[kind+"/"+sec.Name] = hex.EncodeToString(sum[:])
			key := store.SecretKey(spec.Name, kind, sec.Name)
			keep[key] = true
			txn.PutRaw(key, string(sec.Content))
		}
	}
	for _, key := range snap.SecretKeys {
		if strings.HasPrefix(key, store.SecretPrefix(spec.Name)) && !keep[key] {
			txn.Delete(key)
		}
	}
	for i := range spec.Services {
		sv := &spec.Services[i]
		sv.Secrets = withDigests(sv.Secrets, digests, "secret")
		sv.Configs = withDigests(sv.Configs, digests, "config")
	}

	// Named volumes: a new deploy cancels a pending `down -v` of them.
	st.Volumes = nil
	for _, v := range spec.Volumes {
		full := spec.Name + "_" + v.Name
		if v.External {
			full = v.ExternalName
			if full == "" {
				full = v.Name
			}
		}
		st.Volumes = append(st.Volumes, api.Volume{Name: v.Name, FullName: full, External: v.External, DriverOpts: v.DriverOpts, Labels: v.Labels})
		txn.Delete(store.VolumeDeleteKey(full))
	}

	// Networks: keep the leases a stack holds, lease subnets for new ones.
	leased := map[string]string{}
	for k, v := range snap.SubnetLeases {
		leased[k] = v
	}
	have := map[string]bool{}
	for _, n := range st.Networks {
		have[n.Name] = true
	}
	for _, n := range spec.Networks {
		if have[n.Name] {
			continue
		}
		net, err := s.newNetwork(snap, spec.Name, n, leased, txn)
		if err != nil {
			return nil, res, err
		}
		st.Networks = append(st.Networks, net)
	}
	sort.Slice(st.Networks, func(i, j int) bool { return st.Networks[i].Name < st.Networks[j].Name })

	existing := map[string]api.Service{}
	for _, sv := range snap.Services {
		if sv.Stack == spec.Name && !sv.OneOff {
			existing[sv.Spec.Name] = sv
		}
	}
	ended := endedTasks(snap, spec.Name)
	hasTasks := servicesWithTasks(snap, spec.Name)
	revision := st.Revision + 1
	var updated []string
	for _, sp := range spec.Services {
		key := store.ServiceKey(spec.Name, sp.Name)
		old, ok := existing[sp.Name]
		delete(existing, sp.Name)
		if ok && sameSpec(old.Spec, sp) && !opts.ForceRecreate && !(old.Stopped && !opts.NoStart) {
			if !old.Stopped && !opts.NoStart {
				// As Compose's up starts a container that stopped: a
				// task that ended, and that its restart policy leaves
				// ended (a failed pull, a finished job), is replaced.
				retireEnded(snap, ended[sp.Name], txn)
			}
			res.Services = append(res.Services, old)
			continue
		}
		sv := api.Service{ID: s.cfg.NewID(), Stack: spec.Name, Spec: sp, Version: 1, CreatedAt: now, UpdatedAt: now, Stopped: opts.NoStart}
		changed := true
		if ok {
			// up starts stopped services; up --no-start leaves them be.
			sv.ID, sv.CreatedAt, sv.Version, sv.Stopped = old.ID, old.CreatedAt, old.Version, old.Stopped && opts.NoStart
			sv.Rollout, sv.PreviousSpec, sv.PreviousVersion, sv.SameAs = old.Rollout, old.PreviousSpec, old.PreviousVersion, old.SameAs
			scaled := withPace(old.Spec, sp)
			scaled.Replicas = sp.Replicas
			switch {
			case opts.ForceRecreate:
				sv.Version++
			case sameSpec(scaled, sp):
				// Only the count or the pace of updates changed: add or
				// remove replicas, leave the running ones alone.
				changed = old.Spec.Replicas != sp.Replicas || old.Stopped != sv.Stopped
			case opts.NoRecreate:
				sv.Spec = withPace(scaled, sp)
			default:
				sv.Version++
			}
			if sv.Version != old.Version {
				sv.PreviousSpec, sv.PreviousVersion, sv.SameAs = &old.Spec, old.Version, nil
				sv.Rollout = nil
				if hasTasks[sp.Name] {
					r, err := newRollout(sv, revision, now, opts.Confirm)
					if err != nil {
						return nil, res, err
					}
					sv.Rollout = r
					updated = append(updated, sp.Name)
				}
			}
		}
		txn.Unchanged(key, snap.ModRevisions[key])
		txn.Put(key, sv)
		res.Services = append(res.Services, sv)
		if changed {
			res.Changed = append(res.Changed, sp.Name)
		}
	}
	for name := range existing {
		if opts.RemoveOrphans {
			txn.Delete(store.ServiceKey(spec.Name, name))
		}
		res.Orphans = append(res.Orphans, name)
	}
	if len(res.Changed) > 0 {
		st.Revision = revision
	}
	txn.Put(stackKey, st)
	res.Stack = st
	if len(res.Changed) > 0 {
		writeRevision(txn, api.StackRevision{Stack: spec.Name, Number: revision, Kind: "up", CreatedAt: now, Changed: res.Changed, Rollouts: updated}, res.Services)
	}
	res.Updated = updated
	sort.Strings(res.Orphans)
	return txn, res, nil
}

// endedTasks are a stack's tasks that ended (exited or failed) while still
// meant to run, by service.
func endedTasks(snap *store.Snapshot, stack string) map[string][]api.Task {
	out := map[string][]api.Task{}
	for _, t := range snap.Tasks {
		if t.Stack == stack && t.DesiredState == api.DesiredRunning &&
			(t.Status.State == api.StateExited || t.Status.State == api.StateFailed) {
			out[t.Service] = append(out[t.Service], t)
		}
	}
	return out
}

// retireEnded retires ended tasks (of endedTasks), guarded by what was
// read, so the controller starts new ones in their slots at once (a
// retired task carries no restart back-off).
func retireEnded(snap *store.Snapshot, ended []api.Task, txn *store.Txn) {
	for _, t := range ended {
		key := store.TaskKey(t.ID)
		t.DesiredState = api.DesiredShutdown
		t.Status = api.TaskStatus{} // the agent's, under its own key
		txn.Unchanged(key, snap.ModRevisions[key])
		txn.Put(key, t)
	}
}

func withDigests(refs []api.FileRef, digests map[string]string, kind string) []api.FileRef {
	out := append([]api.FileRef(nil), refs...)
	for i := range out {
		out[i].Digest = digests[kind+"/"+out[i].Source]
	}
	return out
}

// withPace returns spec with the update settings of from: they pace an
// update and never make one.
func withPace(spec, from api.ServiceSpec) api.ServiceSpec {
	spec.UpdateConfig, spec.RollbackConfig, spec.RolloutSettings = from.UpdateConfig, from.RollbackConfig, from.RolloutSettings
	return spec
}

// sameSpec compares specs by their wire form, so nil and empty agree.
func sameSpec(a, b api.ServiceSpec) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// checkPortConflicts refuses a host port that another service already
// publishes (replicas of one service may share it).
func checkPortConflicts(snap *store.Snapshot, spec api.StackSpec) error {
	type portKey struct {
		ip    string
		port  uint16
		proto string
	}
	owner := map[portKey]string{}
	claim := func(p api.PortSpec, who string) error {
		if p.Published == 0 {
			return nil
		}
		for k, o := range owner {
			if k.port == p.Published && k.proto == p.Protocol && o != who &&
				(k.ip == p.HostIP || k.ip == "" || p.HostIP == "" || k.ip == "0.0.0.0" || p.HostIP == "0.0.0.0") {
				return api.Errorf(api.ErrConflict, "service %s: ports: host port %d/%s is already published by %s", who, p.Published, p.Protocol, o)
			}
		}
		owner[portKey{p.HostIP, p.Published, p.Protocol}] = who
		return nil
	}
	for _, sv := range snap.Services {
		if sv.Stack == spec.Name {
			continue
		}
		for _, p := range sv.Spec.Ports {
			_ = claim(p, fmt.Sprintf("%q of project %q", sv.Spec.Name, sv.Stack))
		}
	}
	for _, sv := range spec.Services {
		for _, p := range sv.Ports {
			if err := claim(p, fmt.Sprintf("%q of project %q", sv.Name, spec.Name)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Server) removeStack(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := ctxTimeout(r, 30*time.Second)
	defer cancel()
	st, err := s.RemoveStack(ctx, r.PathValue("name"), r.URL.Query().Get("volumes") == "true")
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, st)
}

// RemoveStack marks a stack for removal and deletes its services; the
// controller retires the tasks and deletes the stack once they are gone.
func (s *Server) RemoveStack(ctx context.Context, name string, volumes bool) (api.Stack, error) {
	for attempt := 0; ; attempt++ {
		var st api.Stack
		rev, err := s.store.Get(ctx, store.StackKey(name), &st)
		if errors.Is(err, api.ErrNotFound) {
			return st, api.Errorf(api.ErrNotFound, "project %q not found", name)
		}
		if err != nil {
			return st, err
		}
		snap, err := s.store.Snapshot(ctx)
		if err != nil {
			return st, err
		}
		txn := &store.Txn{}
		txn.Unchanged(store.StackKey(name), rev)
		st.Removing = true
		st.RemoveVolumes = st.RemoveVolumes || volumes
		st.UpdatedAt = s.cfg.Now().UTC()
		txn.Put(store.StackKey(name), st)
		for _, sv := range snap.Services {
			if sv.Stack == name {
				txn.Delete(store.ServiceKey(name, sv.Spec.Name))
			}
		}
		err = s.store.Commit(ctx, txn)
		if errors.Is(err, api.ErrConflict) && attempt < 5 {
			continue
		}
		if err != nil {
			return st, err
		}
		s.log.Info("stack removal started", "stack", name)
		s.Kick()
		return st, nil
	}
}

func (s *Server) listStacks(w http.ResponseWriter, r *http.Request) {
	snap, err := s.store.Snapshot(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	out := []api.StackInfo{}
	for _, st := range snap.Stacks {
		out = append(out, stackInfo(snap, st))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Stack.Name < out[j].Stack.Name })
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getStack(w http.ResponseWriter, r *http.Request) {
	snap, err := s.store.Snapshot(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	name := r.PathValue("name")
	st, ok := snap.Stacks[name]
	if !ok {
		writeError(w, api.Errorf(api.ErrNotFound, "project %q not found", name))
		return
	}
	writeJSON(w, http.StatusOK, stackInfo(snap, st))
}

func stackInfo(snap *store.Snapshot, st api.Stack) api.StackInfo {
	info := api.StackInfo{Stack: st, Services: []api.Service{}}
	for _, sv := range snap.Services {
		if sv.Stack == st.Name {
			info.Services = append(info.Services, sv)
		}
	}
	return info
}

func (s *Server) listTasks(w http.ResponseWriter, r *http.Request) {
	snap, err := s.store.Snapshot(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	stack := r.URL.Query().Get("stack")
	out := []api.Task{}
	for _, t := range snap.Tasks {
		if stack == "" || t.Stack == stack {
			out = append(out, t)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// secretContent serves a secret's or config's content to an agent that
// runs a task using it. It is not part of any listing.
func (s *Server) secretContent(w http.ResponseWriter, r *http.Request) {
	kind := r.PathValue("kind")
	if kind != "secret" && kind != "config" {
		writeError(w, api.Errorf(api.ErrInvalid, "kind %q: want secret or config", kind))
		return
	}
	b, err := s.store.GetRaw(r.Context(), store.SecretKey(r.PathValue("name"), kind, r.PathValue("secret")))
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(b)
}

// newNetwork makes a stack's network: an external one found in another
// project, or a new bridge with a leased (or the asked-for) subnet.
func (s *Server) newNetwork(snap *store.Snapshot, stack string, n api.NetworkSpec, leased map[string]string, txn *store.Txn) (api.Network, error) {
	if n.External {
		name := n.ExternalName
		if name == "" {
			name = n.Name
		}
		for _, other := range snap.Stacks {
			for _, on := range other.Networks {
				if on.FullName == name && !on.External {
					on.Stack, on.Name, on.External = stack, n.Name, true
					return on, nil
				}
			}
		}
		return api.Network{}, api.Errorf(api.ErrInvalid, "network %q: external network %q not found (it must be a network of another deployed project)", n.Name, name)
	}
	net := api.Network{Stack: stack, Name: n.Name, FullName: fullNetworkName(stack, n.Name),
		Bridge: bridgeName(stack, n.Name), Internal: n.Internal}
	if v := n.DriverOpts["com.docker.network.driver.mtu"]; v != "" {
		mtu, err := strconv.Atoi(v)
		if err != nil || mtu < 576 || mtu > 65535 {
			return net, api.Errorf(api.ErrInvalid, "network %q: driver_opts com.docker.network.driver.mtu %q: want a number from 576 to 65535", n.Name, v)
		}
		net.MTU = mtu
	}
	if v := n.DriverOpts["com.docker.network.bridge.name"]; v != "" {
		if len(v) > 15 {
			return net, api.Errorf(api.ErrInvalid, "network %q: driver_opts com.docker.network.bridge.name %q is longer than 15 characters", n.Name, v)
		}
		net.Bridge = v
	}
	if n.Subnet != "" {
		p, err := netip.ParsePrefix(n.Subnet)
		if err != nil || !p.Addr().Is4() || p.Bits() > 30 {
			return net, api.Errorf(api.ErrInvalid, "network %q: ipam subnet %q: want an IPv4 prefix of /30 or larger", n.Name, n.Subnet)
		}
		p = p.Masked()
		for other, owner := range leased {
			if op, err := netip.ParsePrefix(other); err == nil && op.Overlaps(p) {
				return net, api.Errorf(api.ErrConflict, "network %q: subnet %s overlaps %s of %s", n.Name, p, op, owner)
			}
		}
		net.Subnet = p.String()
		net.Gateway = p.Addr().Next().String()
	} else {
		subnet, gw, err := leaseSubnet(s.cfg.AddressPool, s.cfg.NetworkSize, leased)
		if err != nil {
			return net, err
		}
		net.Subnet, net.Gateway = subnet, gw
	}
	leased[net.Subnet] = stack + "/" + n.Name
	if s.cluster != nil {
		net.VNI = newVNI(snap, net.FullName)
	}
	key := store.SubnetLeaseKey(net.Subnet)
	txn.Unchanged(key, 0)
	txn.PutRaw(key, stack+"/"+n.Name)
	if n.EnableIPv6 {
		sn6, gw6, err := leaseSubnet6(s.cfg.AddressPool6, leased)
		if err != nil {
			return net, err
		}
		net.Subnet6, net.Gateway6 = sn6, gw6
		leased[sn6] = stack + "/" + n.Name
		key := store.SubnetLeaseKey(sn6)
		txn.Unchanged(key, 0)
		txn.PutRaw(key, stack+"/"+n.Name)
	}
	return net, nil
}
