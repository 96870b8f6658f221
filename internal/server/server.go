package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/content"
	"github.com/drover-org/drover/internal/events"
	"github.com/drover-org/drover/internal/store"
)

// Config is the control plane's configuration.
type Config struct {
	// AddressPool is the range the networks' subnets come from.
	AddressPool string
	// NetworkSize is the prefix length of each network's subnet; default
	// 24. In a cluster each node running a network's tasks gets a slice
	// of it (a /24 when the network is a /22 or larger).
	NetworkSize int
	// AddressPool6 is where dual-stack networks' /64s come from.
	AddressPool6 string
	// Strategy places tasks: "spread" (the default) or "binpack".
	Strategy string
	// NodeGrace is how long a node may miss heartbeats before it is down.
	NodeGrace time.Duration
	Version   string
	Logger    *slog.Logger
	// Now and NewID default to the clock and random IDs; tests replace them.
	Now   func() time.Time
	NewID func() string
}

// Server serves the API over a store.
type Server struct {
	cfg   Config
	store *store.Store
	log   *slog.Logger

	mu         sync.Mutex
	heartbeats map[string]time.Time // node ID -> last beat (leader's memory)
	reports    reportQueue          // task status reports waiting to be written
	started    time.Time
	kick       chan struct{} // wakes the controller
	events     *events.Bus
	cluster    *Cluster       // nil: no TCP listener, no joins
	agentTLS   *tls.Config    // dialing agents over TCP
	content    *content.Store // images the nodes fetch (SetContentStore)

	views struct { // the agents' shared view of the store (viewAtLeast)
		mu      sync.Mutex
		last    *assignView
		loading chan struct{} // closed when the read in progress ends
	}
}

// EnableCluster lets agents join over TCP (see TCPHandler).
func (s *Server) EnableCluster(c *Cluster) { s.cluster = c }

// New makes a server. Run the controller with RunController.
func New(cfg Config, st *store.Store) *Server {
	if cfg.AddressPool == "" {
		cfg.AddressPool = DefaultAddressPool
	}
	if cfg.AddressPool6 == "" {
		cfg.AddressPool6 = DefaultAddressPool6
	}
	if cfg.NodeGrace == 0 {
		cfg.NodeGrace = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NewID == nil {
		cfg.NewID = RandomID
	}
	return &Server{
		cfg:        cfg,
		store:      st,
		log:        cfg.Logger.With("component", "server"),
		heartbeats: map[string]time.Time{},
		started:    cfg.Now(),
		kick:       make(chan struct{}, 1),
		events:     events.New(10000),
	}
}

// emit publishes an event stamped now.
func (s *Server) emit(e api.Event) {
	if e.Time.IsZero() {
		e.Time = s.cfg.Now().UTC()
	}
	s.events.Publish(e)
}

func taskEvent(t api.Task, action string, attrs map[string]string) api.Event {
	return api.Event{Type: "container", Action: action, ID: t.ID, Stack: t.Stack, Service: t.Service, Name: t.Name(), Attrs: attrs}
}

// DefaultAddressPool is where network subnets come from by default.
const DefaultAddressPool = "10.213.0.0/16"

// DefaultClusterAddressPool is where a cluster's networks (larger, as each
// node takes a slice) come from by default.
const DefaultClusterAddressPool = "10.192.0.0/10"

// RandomID makes a 25-character random ID, as Swarm's task IDs are.
func RandomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])[:25]
}

type route struct {
	pattern string
	handler http.HandlerFunc
}

func (s *Server) routes() []route {
	return []route{
		{"GET /v1/version", s.version},
		{"GET /v1/events", s.streamEvents},
		{"POST /v1/stacks/{name}/services/{service}/{op}", s.serviceOp},
		{"POST /v1/stacks/{name}/run", s.runOneOff},
		{"GET /v1/stacks/{name}/revisions", s.listRevisions},
		{"POST /v1/stacks/{name}/rollback", s.rollbackStack},
		{"POST /v1/stacks/{name}/promote", s.promoteStack},
		{"GET /v1/stacks", s.listStacks},
		{"GET /v1/stacks/{name}", s.getStack},
		{"PUT /v1/stacks/{name}", s.deployStack},
		{"DELETE /v1/stacks/{name}", s.removeStack},
		{"GET /v1/stacks/{name}/files/{kind}/{secret}", s.secretContent},
		{"GET /v1/tasks", s.listTasks},
		{"PUT /v1/tasks/{id}/status", s.reportStatus},
		{"GET /v1/tasks/{id}/logs", s.taskLogs},
		{"POST /v1/tasks/{id}/exec", s.taskOp},
		{"GET /v1/tasks/{id}/stats", s.taskOp},
		{"GET /v1/tasks/{id}/top", s.taskOp},
		{"POST /v1/tasks/{id}/{action}", s.taskOp},
		{"GET /v1/tasks/{id}/archive", s.taskOp},
		{"PUT /v1/tasks/{id}/archive", s.taskOp},
		{"GET /v1/nodes", s.listNodes},
		{"POST /v1/nodes", s.registerNode},
		{"POST /v1/nodes/{id}/heartbeat", s.heartbeat},
		{"GET /v1/nodes/{id}", s.getNode},
		{"GET /v1/cluster/token", s.tokenHandler},
		{"POST /v1/cluster/token", s.tokenHandler},
		{"POST /v1/cluster/clienttoken", s.clientToken},
		{"GET /v1/cluster/clienttokens", s.clientTokens},
		{"DELETE /v1/cluster/clienttokens/{id}", s.revokeClientToken},
		{"POST /v1/nodes/{id}/update", s.updateNode},
		{"DELETE /v1/nodes/{id}", s.removeNode},
		{"GET /v1/nodes/{id}/assignments", s.assignments},
		{"POST /v1/images/load", s.loadImage},
		{"GET /v1/images", s.listImages},
		{"DELETE /v1/images/{name...}", s.removeImage},
		{"POST /v1/build/session", s.buildSession},
		{"GET /v1/content/blobs/{digest}", s.serveContent},
		{"GET /v1/content/images", s.serveContent},
		{"GET /v1/content/images/{name...}", s.serveContent},
		{"PUT /v1/registries/{host}", s.registryLogin},
		{"DELETE /v1/registries/{host}", s.registryLogout},
		{"GET /v1/registries/{host}/credentials", s.registryCredentials},
	}
}

// Handler is the /v1 API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, r := range s.routes() {
		mux.HandleFunc(r.pattern, r.handler)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, api.Errorf(api.ErrNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return mux
}

func (s *Server) version(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, api.Version{Version: s.cfg.Version, GoVersion: runtime.Version(), API: "v1"})
}

func writeJSON(w http.ResponseWriter, status int, v any) { api.WriteJSON(w, status, v) }

func writeError(w http.ResponseWriter, err error) { api.WriteError(w, err) }

// maxBody bounds a request body. It is above what one write to the store
// may hold (a project's secrets travel base64-encoded), so a project too
// large is refused by the deploy, which says why, rather than here.
const maxBody = 64 << 20

// decodeBody reads a JSON request body into v, refusing unknown fields.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return api.Errorf(api.ErrInvalid, "request body is larger than %d MiB", mbe.Limit>>20)
		}
		return api.Errorf(api.ErrInvalid, "request body: %v", err)
	}
	return nil
}

// Kick asks the controller to reconcile soon.
func (s *Server) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func ctxTimeout(r *http.Request, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), d)
}
