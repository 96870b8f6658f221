package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/orchestrator"
	"github.com/drover-org/drover/internal/store"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

const leaderKey = store.Prefix + "leader"

// ServerID reads (or makes and keeps) this server's identity in dataDir, so
// a restarted server knows its own earlier leadership.
func ServerID(dataDir string) (string, error) {
	p := filepath.Join(dataDir, "server-id")
	if b, err := os.ReadFile(p); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	id := RandomID()
	if err := os.WriteFile(p, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write server id: %w", err)
	}
	return id, nil
}

// RunController wins leadership, then runs the reconcile loop and the node
// monitor until ctx ends.
func (s *Server) RunController(ctx context.Context, serverID string) error {
	cli := s.store.Client()
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(10), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("leader election session: %w", err)
	}
	defer sess.Close()
	el := concurrency.NewElection(sess, leaderKey)
	// A leader key left by this server's previous life (kill -9) would
	// hold us off until its lease expires: release it now.
	if resp, err := cli.Get(ctx, leaderKey, clientv3.WithPrefix()); err == nil {
		for _, kv := range resp.Kvs {
			if string(kv.Value) == serverID && clientv3.LeaseID(kv.Lease) != sess.Lease() {
				_, _ = cli.Revoke(ctx, clientv3.LeaseID(kv.Lease))
			}
		}
	}
	if err := el.Campaign(ctx, serverID); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("leader election: %w", err)
	}
	s.log.Info("leading the cluster", "server", serverID)
	s.mu.Lock()
	s.started = s.cfg.Now()
	s.mu.Unlock()
	return s.loop(ctx, sess.Done())
}

func (s *Server) loop(ctx context.Context, lost <-chan struct{}) error {
	watch := s.store.Watch(ctx, 0)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var wake *time.Timer
	for {
		next, err := s.ReconcileOnce(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("reconcile failed; retrying", "err", err)
		}
		var wakeC <-chan time.Time
		if !next.IsZero() {
			if wake != nil {
				wake.Stop()
			}
			wake = time.NewTimer(max(time.Until(next), 0))
			wakeC = wake.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-lost:
			return errors.New("lost leadership: etcd session ended")
		case _, ok := <-watch:
			if !ok {
				watch = s.store.Watch(ctx, 0)
			}
		case <-s.kick:
		case <-tick.C:
		case <-wakeC:
		}
		// Let a burst of writes settle into one pass.
		time.Sleep(10 * time.Millisecond)
	}
}

// ReconcileOnce runs the node monitor and the reconciler once and writes
// their actions. It returns when the next pass is due at the latest.
func (s *Server) ReconcileOnce(ctx context.Context) (time.Time, error) {
	snap, err := s.store.Snapshot(ctx)
	if err != nil {
		return time.Time{}, err
	}
	now := s.cfg.Now().UTC()
	txn := &store.Txn{}
	s.monitorNodes(snap, now, txn)

	act := orchestrator.Reconcile(orchestrator.Input{
		Stacks: snap.Stacks, Services: snap.Services, Tasks: snap.Tasks,
		Nodes: snap.Nodes, Now: now, NewID: s.cfg.NewID, Strategy: s.cfg.Strategy,
	})
	byID := map[string]api.Task{}
	for _, t := range snap.Tasks {
		byID[t.ID] = t
	}
	if s.cluster != nil {
		// The slices first, in a guarded write of their own: a guarded
		// write cannot be split, and the tasks of a large pass can be
		// more than one write holds. A slice leased for a task whose
		// write then fails stays with its node, as a used one does.
		leases := &store.Txn{}
		leaseForPlacements(snap, &act, byID, leases)
		if leases.Len() > 0 {
			if err := s.store.Commit(ctx, leases); err != nil {
				return time.Time{}, fmt.Errorf("lease network slices: %w", err)
			}
		}
	}
	if len(act.Services) > 0 {
		// Rollout states (and rollbacks) first, guarded: a deploy that
		// changed a service since the snapshot wins, and this pass is
		// done again from the new state.
		if err := s.writeRollouts(ctx, snap, act.Services); err != nil {
			return time.Time{}, err
		}
	}
	put := func(t api.Task) {
		t.Status = api.TaskStatus{} // the agent's, kept under its own key
		txn.Put(store.TaskKey(t.ID), t)
	}
	for _, t := range act.Create {
		put(t)
		s.log.Info("task created", "task", t.ID, "name", t.Name(), "node", t.NodeID, "version", t.SpecVersion)
		s.emit(taskEvent(t, "create", nil))
	}
	stopNow := map[string]bool{}
	for _, id := range act.StopNow {
		stopNow[id] = true
	}
	for _, id := range act.Shutdown {
		t := byID[id]
		t.DesiredState = api.DesiredShutdown
		t.StopNow = stopNow[id]
		put(t)
		s.log.Info("task retired", "task", id, "name", t.Name())
		s.emit(taskEvent(t, "stop", nil))
	}
	for _, p := range act.Assign {
		t := byID[p.TaskID]
		t.NodeID, t.Unplaced = p.NodeID, ""
		put(t)
	}
	for _, u := range act.Unplaced {
		t := byID[u.TaskID]
		t.Unplaced = u.Reason
		put(t)
	}
	for _, id := range act.Delete {
		txn.Delete(store.TaskKey(id))
		txn.Delete(store.TaskStatusKey(id))
	}
	for _, name := range act.DeleteStacks {
		txn.Delete(store.StackKey(name))
		txn.DeletePrefix(store.SecretPrefix(name))
		if st := snap.Stacks[name]; st.RemoveVolumes {
			for _, v := range st.Volumes {
				if !v.External {
					// The agents delete it; the request expires on its own
					// so no node has to acknowledge it.
					if err := s.store.PutRawTTL(ctx, store.VolumeDeleteKey(v.FullName), name, 3600); err != nil {
						return time.Time{}, err
					}
				}
			}
		}
		for subnet, owner := range snap.SubnetLeases {
			if strings.HasPrefix(owner, name+"/") {
				txn.Delete(store.SubnetLeaseKey(subnet))
			}
		}
		s.log.Info("stack removed", "stack", name)
		s.emit(api.Event{Type: "stack", Action: "remove", ID: name, Stack: name})
	}
	if txn.Len() > 0 {
		if err := s.store.Commit(ctx, txn); err != nil {
			return time.Time{}, err
		}
	}
	return act.Wake, nil
}

// monitorNodes marks nodes down when their heartbeats stop, and ready when
// they come back. Heartbeats live in the leader's memory only; a new
// leader gives every node a full grace period.
func (s *Server) monitorNodes(snap *store.Snapshot, now time.Time, txn *store.Txn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, n := range snap.Nodes {
		last, ok := s.heartbeats[n.ID]
		if !ok || last.Before(s.started) {
			last = s.started
		}
		alive := now.Sub(last) <= s.cfg.NodeGrace
		switch {
		case n.State == api.NodeReady && !alive:
			n.State = api.NodeDown
			s.log.Warn("node down: heartbeats stopped", "node", n.ID, "hostname", n.Hostname, "last", last)
		case n.State != api.NodeReady && alive && ok:
			n.State = api.NodeReady
			s.log.Info("node ready again", "node", n.ID, "hostname", n.Hostname)
		default:
			continue
		}
		n.LastHeartbeat = last
		s.events.Publish(api.Event{Time: now, Type: "node", Action: n.State, ID: n.ID, Name: n.Hostname})
		snap.Nodes[i] = n
		txn.Put(store.NodeKey(n.ID), n)
	}
}
