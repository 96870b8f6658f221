package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/store"
)

// taskInfo is the part of a stored task a simulated node acts on. Decoding
// only this keeps the simulation's share of the CPU small.
type taskInfo struct {
	ID           string `json:"id"`
	SpecVersion  uint64 `json:"specVersion"`
	NodeID       string `json:"nodeID"`
	DesiredState string `json:"desiredState"`
	Unplaced     string `json:"unplaced"`
	Spec         struct {
		Image           string       `json:"image"`
		Command         []string     `json:"command"`
		StopSignal      string       `json:"stopSignal"`
		StopGracePeriod api.Duration `json:"stopGracePeriod"`
	} `json:"spec"`
}

// assigner stands in for every node's long poll of its assignments: one
// watch on the task keys hands each task to the node it is placed on.
type assigner struct {
	f     *fleet
	cli   *clientv3.Client
	owner map[string]*simNode // task ID -> the node it was handed to

	unplaced   atomic.Int64 // task writes without a node
	lastReason atomic.Value // string: the last Unplaced reason seen
	relists    atomic.Int64
}

func newAssigner(f *fleet, cli *clientv3.Client) *assigner {
	return &assigner{f: f, cli: cli, owner: map[string]*simNode{}}
}

var tasksPrefix = store.Prefix + "tasks/"

// run follows the task keys from revision from+1 until ctx ends. A watch
// that falls behind etcd's compaction re-reads every task.
func (a *assigner) run(ctx context.Context, from int64) {
	rev := from
	for ctx.Err() == nil {
		wch := a.cli.Watch(clientv3.WithRequireLeader(ctx), tasksPrefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
		for resp := range wch {
			if err := resp.Err(); err != nil {
				if errors.Is(err, rpctypes.ErrCompacted) {
					if r, err := a.relist(ctx); err == nil {
						rev = r
					}
				}
				a.f.noteErr(err)
				break
			}
			for _, ev := range resp.Events {
				a.apply(ctx, ev.Type == mvccpb.DELETE, ev.Kv.Key, ev.Kv.Value)
			}
			rev = resp.Header.Revision
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
}

// relist reads every task and takes the ones the watch missed.
func (a *assigner) relist(ctx context.Context) (int64, error) {
	a.relists.Add(1)
	resp, err := a.cli.Get(ctx, tasksPrefix, clientv3.WithPrefix())
	if err != nil {
		return 0, err
	}
	seen := map[string]bool{}
	for _, kv := range resp.Kvs {
		seen[strings.TrimPrefix(string(kv.Key), tasksPrefix)] = true
		a.apply(ctx, false, kv.Key, kv.Value)
	}
	for id := range a.owner {
		if !seen[id] {
			a.apply(ctx, true, []byte(tasksPrefix+id), nil)
		}
	}
	return resp.Header.Revision, nil
}

func (a *assigner) apply(ctx context.Context, deleted bool, key, value []byte) {
	id := strings.TrimPrefix(string(key), tasksPrefix)
	if deleted {
		if n := a.owner[id]; n != nil {
			delete(a.owner, id)
			n.forget(ctx, id)
		}
		return
	}
	var ti taskInfo
	if err := json.Unmarshal(value, &ti); err != nil {
		a.f.noteErr(err)
		return
	}
	if ti.NodeID == "" {
		a.unplaced.Add(1)
		if ti.Unplaced != "" {
			a.lastReason.Store(ti.Unplaced)
		}
		return
	}
	n := a.f.byID[ti.NodeID]
	if n == nil {
		return // not one of ours
	}
	prev := a.owner[id]
	if prev == nil {
		now := a.f.since()
		a.f.firstPlaced.CompareAndSwap(0, now)
		if a.f.placed.Add(1) == a.f.want {
			a.f.allPlaced.Store(now)
		}
	} else if prev != n {
		prev.forget(ctx, id)
	}
	a.owner[id] = n
	n.assign(ctx, ti)
}
