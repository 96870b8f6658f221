package store

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	goruntime "runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/drover-org/drover/api"
)

// Prefix is where Drover's keys live.
const Prefix = "/drover/"

// Keys of each kind of object.
func StackKey(name string) string          { return Prefix + "stacks/" + name }
func ServiceKey(stack, name string) string { return Prefix + "services/" + stack + "/" + name }
func TaskKey(id string) string             { return Prefix + "tasks/" + id }
func TaskStatusKey(id string) string       { return Prefix + "taskstatus/" + id }
func NodeKey(id string) string             { return Prefix + "nodes/" + id }
func SubnetLeaseKey(subnet string) string {
	return Prefix + "subnets/" + strings.ReplaceAll(subnet, "/", "_")
}
func servicePrefix(stack string) string { return Prefix + "services/" + stack + "/" }

// Store reads and writes Drover's objects in etcd.
type Store struct {
	cli *clientv3.Client
	// writes holds a slot for each write waiting in etcd (see
	// maxWritesInFlight).
	writes chan struct{}
}

// maxWritesInFlight bounds the writes this store has waiting in etcd at
// once. etcd refuses every write ("too many requests") while more than
// 5,000 of its log entries wait to be applied, and thousands of agents
// reporting at once get there: a simulated deploy of a million tasks on
// 5,000 nodes had the controller's passes fail on it for minutes. Writes
// beyond the bound wait here instead; etcd still batches those in flight.
const maxWritesInFlight = 1000

// New wraps an etcd client.
func New(cli *clientv3.Client) *Store {
	return &Store{cli: cli, writes: make(chan struct{}, maxWritesInFlight)}
}

// commitTxn runs one etcd transaction once a write slot is free.
func (s *Store) commitTxn(ctx context.Context, cmps []clientv3.Cmp, ops []clientv3.Op) (*clientv3.TxnResponse, error) {
	select {
	case s.writes <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-s.writes }()
	return s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
}

// Client gives the underlying etcd client (for leader election).
func (s *Store) Client() *clientv3.Client { return s.cli }

// Snapshot is every object at one store revision.
type Snapshot struct {
	Revision int64
	Stacks   map[string]api.Stack
	Services []api.Service // sorted by stack, name
	Tasks    []api.Task    // with Status merged; sorted by stack, service, slot, creation
	Nodes    []api.Node
	// SecretKeys are the keys of stored secrets and configs (no content).
	SecretKeys []string
	// VolumeDeletes are named volumes the agents are to delete.
	VolumeDeletes []string
	// ModRevisions by key, for compare-and-swap.
	ModRevisions map[string]int64
	SubnetLeases map[string]string // subnet -> "stack/network"
}

// Revision is the store's current revision, without reading any value.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	resp, err := s.cli.Get(ctx, Prefix+"revision", clientv3.WithCountOnly())
	if err != nil {
		return 0, unavailable(err)
	}
	return resp.Header.Revision, nil
}

// Snapshot reads everything under the prefix at one revision.
func (s *Store) Snapshot(ctx context.Context) (*Snapshot, error) {
	resp, err := s.cli.Get(ctx, Prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, unavailable(err)
	}
	snap := &Snapshot{
		Revision:     resp.Header.Revision,
		Stacks:       map[string]api.Stack{},
		ModRevisions: make(map[string]int64, len(resp.Kvs)),
		SubnetLeases: map[string]string{},
	}
	// Tasks are nearly all of a large store: they are decoded last, in
	// place and in parallel. The error reported is still the one of the
	// first bad key in key order.
	var taskKVs []int
	statuses := map[string]api.TaskStatus{}
	badAt, badErr := len(resp.Kvs), error(nil)
	for i, kv := range resp.Kvs {
		key := string(kv.Key)
		snap.ModRevisions[key] = kv.ModRevision
		rest := strings.TrimPrefix(key, Prefix)
		kind, _, _ := strings.Cut(rest, "/")
		var err error
		switch kind {
		case "stacks":
			var st api.Stack
			if err = json.Unmarshal(kv.Value, &st); err == nil {
				snap.Stacks[st.Name] = st
			}
		case "services":
			var sv api.Service
			if err = json.Unmarshal(kv.Value, &sv); err == nil {
				snap.Services = append(snap.Services, sv)
			}
		case "tasks":
			taskKVs = append(taskKVs, i)
		case "taskstatus":
			var ts api.TaskStatus
			if err = json.Unmarshal(kv.Value, &ts); err == nil {
				statuses[strings.TrimPrefix(rest, "taskstatus/")] = ts
			}
		case "nodes":
			var n api.Node
			if err = json.Unmarshal(kv.Value, &n); err == nil {
				snap.Nodes = append(snap.Nodes, n)
			}
		case "volumedeletes":
			snap.VolumeDeletes = append(snap.VolumeDeletes, strings.TrimPrefix(rest, "volumedeletes/"))
		case "secrets":
			// Content stays out of snapshots; only the key is noted.
			snap.SecretKeys = append(snap.SecretKeys, key)
		case "subnets":
			snap.SubnetLeases[strings.ReplaceAll(strings.TrimPrefix(rest, "subnets/"), "_", "/")] = string(kv.Value)
		}
		if err != nil && i < badAt {
			badAt, badErr = i, err
		}
	}
	tasks := make([]api.Task, len(taskKVs))
	if at, err := decodeTasks(resp.Kvs, taskKVs, tasks); err != nil && at < badAt {
		badAt, badErr = at, err
	}
	if badErr != nil {
		return nil, fmt.Errorf("store key %s holds bad JSON: %w", resp.Kvs[badAt].Key, badErr)
	}
	for i := range tasks {
		if st, ok := statuses[tasks[i].ID]; ok {
			tasks[i].Status = st
		}
		if tasks[i].Status.State == "" {
			tasks[i].Status.State = api.StatePending
		}
	}
	SortTasks(tasks)
	snap.Tasks = tasks
	sort.Slice(snap.Services, func(i, j int) bool {
		a, b := snap.Services[i], snap.Services[j]
		if a.Stack != b.Stack {
			return a.Stack < b.Stack
		}
		return a.Spec.Name < b.Spec.Name
	})
	sort.Slice(snap.Nodes, func(i, j int) bool { return snap.Nodes[i].ID < snap.Nodes[j].ID })
	return snap, nil
}

// decodeTasks decodes kvs[at[i]] into tasks[i], spread over the CPUs when
// there are many. It returns the index in kvs of the first bad one.
func decodeTasks(kvs []*mvccpb.KeyValue, at []int, tasks []api.Task) (int, error) {
	const perWorker = 2048 // below this a goroutine costs more than it saves
	workers := min(goruntime.GOMAXPROCS(0), (len(at)+perWorker-1)/perWorker)
	if workers <= 1 {
		for i, k := range at {
			if err := json.Unmarshal(kvs[k].Value, &tasks[i]); err != nil {
				return k, err
			}
		}
		return 0, nil
	}
	type bad struct {
		at  int
		err error
	}
	found := make([]bad, workers)
	var wg sync.WaitGroup
	size := (len(at) + workers - 1) / workers
	for w := 0; w < workers; w++ {
		lo, hi := w*size, min((w+1)*size, len(at))
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				if err := json.Unmarshal(kvs[at[i]].Value, &tasks[i]); err != nil {
					found[w] = bad{at[i], err}
					return
				}
			}
		})
	}
	wg.Wait()
	for _, b := range found {
		if b.err != nil {
			return b.at, b.err // workers cover ascending ranges
		}
	}
	return 0, nil
}

// SortTasks orders tasks by stack, service, slot and creation (then ID,
// then their order in the input: the sort is stable).
func SortTasks(tasks []api.Task) {
	// Tasks are large and a million of them do not fit in a cache: sort
	// small keys (the stack and service as a rank), then move each task
	// once. The input position ends every tie, so an unstable sort of the
	// keys gives the stable order.
	type pair struct{ stack, service string }
	ranks := map[pair]int32{}
	for i := range tasks {
		ranks[pair{tasks[i].Stack, tasks[i].Service}] = 0
	}
	pairs := make([]pair, 0, len(ranks))
	for p := range ranks {
		pairs = append(pairs, p)
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		if c := strings.Compare(a.stack, b.stack); c != 0 {
			return c
		}
		return strings.Compare(a.service, b.service)
	})
	for i, p := range pairs {
		ranks[p] = int32(i)
	}
	type key struct {
		service int32
		nsec    int32
		slot    int
		sec     int64
		at      int
	}
	keys := make([]key, len(tasks))
	for i := range tasks {
		t := &tasks[i]
		keys[i] = key{service: ranks[pair{t.Stack, t.Service}], slot: t.Slot, sec: t.CreatedAt.Unix(), nsec: int32(t.CreatedAt.Nanosecond()), at: i}
	}
	slices.SortFunc(keys, func(a, b key) int {
		if c := cmp.Compare(a.service, b.service); c != 0 {
			return c
		}
		if c := cmp.Compare(a.slot, b.slot); c != 0 {
			return c
		}
		if c := cmp.Compare(a.sec, b.sec); c != 0 {
			return c
		}
		if c := cmp.Compare(a.nsec, b.nsec); c != 0 {
			return c
		}
		if c := strings.Compare(tasks[a.at].ID, tasks[b.at].ID); c != 0 {
			return c
		}
		return cmp.Compare(a.at, b.at)
	})
	// Apply the permutation in place, one cycle at a time: position i
	// takes the task that was at keys[i].at.
	for i := range keys {
		if keys[i].at == i {
			continue
		}
		tmp := tasks[i]
		j := i
		for {
			k := keys[j].at
			keys[j].at = j
			if k == i {
				tasks[j] = tmp
				break
			}
			tasks[j] = tasks[k]
			j = k
		}
	}
}

// Get reads one object into v; ErrNotFound if absent. It returns the key's
// mod revision for compare-and-swap.
func (s *Store) Get(ctx context.Context, key string, v any) (int64, error) {
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return 0, unavailable(err)
	}
	if len(resp.Kvs) == 0 {
		return 0, api.Errorf(api.ErrNotFound, "%s not found", strings.TrimPrefix(key, Prefix))
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, v); err != nil {
		return 0, fmt.Errorf("store key %s holds bad JSON: %w", key, err)
	}
	return resp.Kvs[0].ModRevision, nil
}

// Txn collects writes that happen together or not at all, guarded by
// compare-and-swap conditions.
type Txn struct {
	cmps []clientv3.Cmp
	ops  []clientv3.Op
	err  error
}

// Put adds a write of v at key.
func (t *Txn) Put(key string, v any) {
	b, err := json.Marshal(v)
	if err != nil && t.err == nil {
		t.err = fmt.Errorf("encode %s: %w", key, err)
	}
	t.ops = append(t.ops, clientv3.OpPut(key, string(b)))
}

// PutRaw adds a write of a plain string.
func (t *Txn) PutRaw(key, value string) { t.ops = append(t.ops, clientv3.OpPut(key, value)) }

// DeletePrefix adds the deletion of every key under prefix.
func (t *Txn) DeletePrefix(prefix string) {
	t.ops = append(t.ops, clientv3.OpDelete(prefix, clientv3.WithPrefix()))
}

// PutRawTTL adds a write of a plain string that expires after ttl.
func (s *Store) PutRawTTL(ctx context.Context, key, value string, ttlSeconds int64) error {
	lease, err := s.cli.Grant(ctx, ttlSeconds)
	if err != nil {
		return unavailable(err)
	}
	if _, err := s.commitTxn(ctx, nil, []clientv3.Op{clientv3.OpPut(key, value, clientv3.WithLease(lease.ID))}); err != nil {
		return unavailable(err)
	}
	return nil
}

// ListRaw reads the plain values of every key under prefix, by key.
func (s *Store) ListRaw(ctx context.Context, prefix string) (map[string][]byte, error) {
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, unavailable(err)
	}
	out := make(map[string][]byte, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = kv.Value
	}
	return out, nil
}

// GetRawMany reads the plain values of keys at one revision each part (a
// thousand keys a transaction); absent keys are left out.
func (s *Store) GetRawMany(ctx context.Context, keys []string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(keys))
	for i := 0; i < len(keys); i += 1000 {
		part := keys[i:min(i+1000, len(keys))]
		ops := make([]clientv3.Op, len(part))
		for j, k := range part {
			ops[j] = clientv3.OpGet(k)
		}
		resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return nil, unavailable(err)
		}
		for _, r := range resp.Responses {
			for _, kv := range r.GetResponseRange().Kvs {
				out[string(kv.Key)] = kv.Value
			}
		}
	}
	return out, nil
}

// GetRaw reads a plain value; ErrNotFound if absent.
func (s *Store) GetRaw(ctx context.Context, key string) ([]byte, error) {
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return nil, unavailable(err)
	}
	if len(resp.Kvs) == 0 {
		return nil, api.Errorf(api.ErrNotFound, "%s not found", strings.TrimPrefix(key, Prefix))
	}
	return resp.Kvs[0].Value, nil
}

// Delete adds a deletion.
func (t *Txn) Delete(key string) { t.ops = append(t.ops, clientv3.OpDelete(key)) }

// Unchanged guards the transaction: key's mod revision must still be rev
// (0: the key must not exist).
func (t *Txn) Unchanged(key string, rev int64) {
	t.cmps = append(t.cmps, clientv3.Compare(clientv3.ModRevision(key), "=", rev))
}

// Exists guards the transaction on key being present.
func (t *Txn) Exists(key string) {
	t.cmps = append(t.cmps, clientv3.Compare(clientv3.CreateRevision(key), ">", 0))
}

// Len is the number of writes.
func (t *Txn) Len() int { return len(t.ops) }

// maxOps stays under etcd's default limit of 128 operations a transaction,
// for the parts of a split batch.
const maxOps = 120

// MaxTxnOps and MaxRequestBytes are what one transaction may hold: the
// embedded member is started with them (etcd's defaults, 128 operations
// and 1.5 MiB, are too small for one all-or-nothing deploy of a project of
// a few hundred services or with a large secret). A guarded transaction
// beyond them is refused before it is sent, with ErrInvalid.
const (
	MaxTxnOps       = 16384
	MaxRequestBytes = 32 << 20
)

// txnOverhead is room left in MaxRequestBytes for the request's framing.
const txnOverhead = 64 << 10

// Size is the bytes of keys and values the transaction writes.
func (t *Txn) Size() int {
	n := 0
	for _, op := range t.ops {
		n += len(op.KeyBytes()) + len(op.ValueBytes())
	}
	for _, c := range t.cmps {
		n += len(c.KeyBytes())
	}
	return n
}

// checkSize refuses a transaction that etcd would refuse as too large.
func (t *Txn) checkSize() error {
	if len(t.ops) > MaxTxnOps || len(t.cmps) > MaxTxnOps {
		return api.Errorf(api.ErrInvalid, "%d writes and %d checks in one change, over the limit of %d", len(t.ops), len(t.cmps), MaxTxnOps)
	}
	if n := t.Size(); n > MaxRequestBytes-txnOverhead {
		return api.Errorf(api.ErrInvalid, "%.1f MiB in one change, over the limit of %d MiB", float64(n)/(1<<20), (MaxRequestBytes-txnOverhead)>>20)
	}
	return nil
}

// commitWidth is how many parts of a split batch are in flight at once.
// etcd batches concurrent proposals into one raft round and one WAL sync,
// so a 100,000-task deploy is written several times faster than part by
// part, above all while agents' status reports queue for the same log.
const commitWidth = 8

// Commit applies the transaction; ErrConflict if a guard failed.
func (s *Store) Commit(ctx context.Context, t *Txn) error {
	if t.err != nil {
		return t.err
	}
	if len(t.ops) > maxOps && len(t.cmps) == 0 {
		// Unguarded batches may be split; each write stands alone, so on
		// an error any of the parts may have been applied.
		var parts [][]clientv3.Op
		for i := 0; i < len(t.ops); i += maxOps {
			parts = append(parts, t.ops[i:min(i+maxOps, len(t.ops))])
		}
		width := commitWidth
		if !independent(t.ops) {
			width = 1 // a key written twice: keep the order of the writes
		}
		return s.commitParts(ctx, parts, width)
	}
	if err := t.checkSize(); err != nil {
		return err
	}
	resp, err := s.commitTxn(ctx, t.cmps, t.ops)
	if err != nil {
		return unavailable(err)
	}
	if !resp.Succeeded {
		return api.Errorf(api.ErrConflict, "the state changed while writing; try again")
	}
	return nil
}

// independent reports whether the writes touch distinct single keys, so
// that their order does not matter.
func independent(ops []clientv3.Op) bool {
	seen := make(map[string]struct{}, len(ops))
	for _, op := range ops {
		if !op.IsPut() && !op.IsDelete() || len(op.RangeBytes()) > 0 {
			return false
		}
		k := string(op.KeyBytes())
		if _, dup := seen[k]; dup {
			return false
		}
		seen[k] = struct{}{}
	}
	return true
}

// commitParts commits each part in its own transaction, width at a time;
// after an error no further part starts.
func (s *Store) commitParts(ctx context.Context, parts [][]clientv3.Op, width int) error {
	if width <= 1 {
		for _, p := range parts {
			if _, err := s.commitTxn(ctx, nil, p); err != nil {
				return unavailable(err)
			}
		}
		return nil
	}
	var (
		mu    sync.Mutex
		first error
		next  int
		wg    sync.WaitGroup
	)
	take := func() ([]clientv3.Op, bool) {
		mu.Lock()
		defer mu.Unlock()
		if first != nil || next == len(parts) {
			return nil, false
		}
		next++
		return parts[next-1], true
	}
	for w := 0; w < min(width, len(parts)); w++ {
		wg.Go(func() {
			for p, ok := take(); ok; p, ok = take() {
				if _, err := s.commitTxn(ctx, nil, p); err != nil {
					mu.Lock()
					if first == nil {
						first = unavailable(err)
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return first
}

// Watch sends the store revision after every change under the prefix until
// ctx ends. Slow readers see only the latest revision.
func (s *Store) Watch(ctx context.Context, fromRev int64) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		defer close(out)
		opts := []clientv3.OpOption{clientv3.WithPrefix()}
		if fromRev > 0 {
			opts = append(opts, clientv3.WithRev(fromRev+1))
		}
		for resp := range s.cli.Watch(clientv3.WithRequireLeader(ctx), Prefix, opts...) {
			if resp.Err() != nil {
				// Compacted or lost: tell the reader to re-read everything.
				select {
				case out <- 0:
				default:
				}
				return
			}
			rev := resp.Header.Revision
			select {
			case out <- rev:
			default:
				select {
				case <-out:
				default:
				}
				out <- rev
			}
		}
	}()
	return out
}

func unavailable(err error) error {
	return fmt.Errorf("store: %v: %w", err, api.ErrUnavailable)
}

// SecretKey holds a secret's or config's content (kind "secret" or
// "config"). Snapshot never reads these keys into listings.
func SecretKey(stack, kind, name string) string { return SecretPrefix(stack) + kind + "/" + name }

// SecretPrefix holds all of a stack's secrets and configs.
func SecretPrefix(stack string) string { return Prefix + "secrets/" + stack + "/" }

// VolumeDeleteKey asks the agents to delete a named volume (`down -v`).
func VolumeDeleteKey(fullName string) string { return Prefix + "volumedeletes/" + fullName }

// HistoryPrefix holds stack revisions. It lies outside Prefix so that
// snapshots and watches, which the controller takes on every change, do
// not carry them.
const HistoryPrefix = "/drover-history/"

// RevisionKey is where revision n of a stack is kept.
func RevisionKey(stack string, n int) string {
	return fmt.Sprintf("%srevisions/%s/%08d", HistoryPrefix, stack, n)
}

// RevisionOutcomeKey holds how the rollout of one service of revision n
// ended.
func RevisionOutcomeKey(stack string, n int, service string) string {
	return fmt.Sprintf("%soutcomes/%s/%08d/%s", HistoryPrefix, stack, n, service)
}

// Revisions reads a stack's kept revisions, oldest first, with the
// outcomes recorded for them.
func (s *Store) Revisions(ctx context.Context, stack string) ([]api.StackRevision, error) {
	revs, err := s.ListRaw(ctx, HistoryPrefix+"revisions/"+stack+"/")
	if err != nil {
		return nil, err
	}
	outs, err := s.ListRaw(ctx, HistoryPrefix+"outcomes/"+stack+"/")
	if err != nil {
		return nil, err
	}
	var out []api.StackRevision
	for key, b := range revs {
		var r api.StackRevision
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("store key %s holds bad JSON: %w", key, err)
		}
		prefix := fmt.Sprintf("%soutcomes/%s/%08d/", HistoryPrefix, stack, r.Number)
		for k, v := range outs {
			if svc, ok := strings.CutPrefix(k, prefix); ok {
				if r.Outcomes == nil {
					r.Outcomes = map[string]string{}
				}
				r.Outcomes[svc] = string(v)
			}
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out, nil
}
