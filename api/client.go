package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultHost is where a local server listens.
const DefaultHost = "unix:///run/drover/drover.sock"

// Client speaks to a Drover server's /v1 API.
type Client struct {
	host   string
	base   string
	hc     *http.Client
	dial   func(ctx context.Context) (net.Conn, error)
	bearer string
}

// SetBearer makes every request carry an API token (remote access).
func (c *Client) SetBearer(secret string) { c.bearer = secret }

// NewClient makes a client for host: unix:///PATH, tcp://HOST:PORT or
// http://HOST:PORT.
func NewClient(host string) (*Client, error) {
	if host == "" {
		host = DefaultHost
	}
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("server address %q: %v", host, err)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second}
	c := &Client{host: host, hc: &http.Client{Transport: tr}}
	switch u.Scheme {
	case "unix":
		path := u.Path
		if path == "" {
			return nil, fmt.Errorf("server address %q: want unix:///absolute/path", host)
		}
		c.dial = func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) { return c.dial(ctx) }
		c.base = "http://drover"
	case "tcp", "http":
		c.base = "http://" + u.Host
		c.dial = func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", u.Host)
		}
	default:
		return nil, fmt.Errorf("server address %q: scheme must be unix, tcp or http", host)
	}
	return c, nil
}

// NewClientTLS makes a client for https://HOST:PORT (or HOST:PORT) over
// TLS with cfg: an agent's mutual TLS to its server, or the server's to an
// agent.
func NewClientTLS(host string, cfg *tls.Config) (*Client, error) {
	addr := strings.TrimPrefix(strings.TrimPrefix(host, "https://"), "tcp://")
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("server address %q: want HOST:PORT", host)
	}
	dialer := &tls.Dialer{Config: cfg}
	c := &Client{host: "https://" + addr, base: "https://" + addr}
	c.dial = func(ctx context.Context) (net.Conn, error) { return dialer.DialContext(ctx, "tcp", addr) }
	tr := &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second, TLSClientConfig: cfg,
		DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return c.dial(ctx) }}
	c.hc = &http.Client{Transport: tr}
	return c, nil
}

// Host is the address the client talks to.
func (c *Client) Host() string { return c.host }

// Do sends a request with an optional JSON body and decodes a JSON answer
// into out (if not nil). Failed requests come back as *Error.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	resp, err := c.Raw(ctx, method, path, rd, "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: bad answer from server: %v", method, path, err)
	}
	return nil
}

// Raw sends a request and returns the response when its status is 2xx; the
// caller closes the body.
func (c *Client) Raw(ctx context.Context, method, path string, body io.Reader, contentType string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &Error{Code: CodeUnavailable, Message: fmt.Sprintf("cannot reach the Drover server at %s: %v (is `drover server` running?)", c.host, unwrapURLError(err))}
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var e Error
	if json.Unmarshal(b, &e) != nil || e.Code == "" {
		e = Error{Code: CodeInternal, Message: strings.TrimSpace(fmt.Sprintf("server answered %s: %s", resp.Status, b))}
	}
	e.Status = resp.StatusCode
	return &e
}

// Version asks the server for its version.
func (c *Client) Version(ctx context.Context) (Version, error) {
	var v Version
	return v, c.Do(ctx, http.MethodGet, "/v1/version", nil, &v)
}

// DeployStack creates or updates a stack.
func (c *Client) DeployStack(ctx context.Context, spec StackSpec, removeOrphans bool) (DeployResult, error) {
	var r DeployResult
	path := "/v1/stacks/" + url.PathEscape(spec.Name)
	if removeOrphans {
		path += "?removeOrphans=true"
	}
	return r, c.Do(ctx, http.MethodPut, path, spec, &r)
}

// RemoveStack starts the removal of a stack (and of its named volumes).
func (c *Client) RemoveStack(ctx context.Context, name string, volumes bool) error {
	path := "/v1/stacks/" + url.PathEscape(name)
	if volumes {
		path += "?volumes=true"
	}
	return c.Do(ctx, http.MethodDelete, path, nil, nil)
}

// StackFile reads the content of a stack's secret or config (kind
// "secret" or "config"); agents use it to mount them.
func (c *Client) StackFile(ctx context.Context, stack, kind, name string) ([]byte, error) {
	resp, err := c.Raw(ctx, http.MethodGet, "/v1/stacks/"+url.PathEscape(stack)+"/files/"+kind+"/"+url.PathEscape(name), nil, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, 64<<20))
}

// Stacks lists stacks.
func (c *Client) Stacks(ctx context.Context) ([]StackInfo, error) {
	var out []StackInfo
	return out, c.Do(ctx, http.MethodGet, "/v1/stacks", nil, &out)
}

// Stack reads one stack.
func (c *Client) Stack(ctx context.Context, name string) (StackInfo, error) {
	var out StackInfo
	return out, c.Do(ctx, http.MethodGet, "/v1/stacks/"+url.PathEscape(name), nil, &out)
}

// Tasks lists tasks, of one stack when stack is not empty.
func (c *Client) Tasks(ctx context.Context, stack string) ([]Task, error) {
	var out []Task
	path := "/v1/tasks"
	if stack != "" {
		path += "?stack=" + url.QueryEscape(stack)
	}
	return out, c.Do(ctx, http.MethodGet, path, nil, &out)
}

// LogOptions select a task's log lines.
type LogOptions struct {
	Follow bool
	Tail   int // -1: all
	Since  time.Time
	Until  time.Time
}

// Query encodes the options as URL parameters.
func (o LogOptions) Query() url.Values {
	q := url.Values{}
	if o.Follow {
		q.Set("follow", "true")
	}
	q.Set("tail", fmt.Sprint(o.Tail))
	if !o.Since.IsZero() {
		q.Set("since", o.Since.Format(time.RFC3339Nano))
	}
	if !o.Until.IsZero() {
		q.Set("until", o.Until.Format(time.RFC3339Nano))
	}
	return q
}

// TaskLogs streams a task's log as JSON lines of LogEntry.
func (c *Client) TaskLogs(ctx context.Context, id string, o LogOptions) (io.ReadCloser, error) {
	resp, err := c.Raw(ctx, http.MethodGet, "/v1/tasks/"+url.PathEscape(id)+"/logs?"+o.Query().Encode(), nil, "")
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// LoadImage sends an image archive to the cluster.
func (c *Client) LoadImage(ctx context.Context, r io.Reader) (ImageLoadResult, error) {
	var out ImageLoadResult
	resp, err := c.Raw(ctx, http.MethodPost, "/v1/images/load", r, "application/x-tar")
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

// Images lists the cluster's images: those of the server's content store
// and those the nodes hold.
func (c *Client) Images(ctx context.Context) ([]Image, error) {
	var out []Image
	return out, c.Do(ctx, http.MethodGet, "/v1/images", nil, &out)
}

// RemoveImage removes an image from the server's content store and every
// node; force removes it even while services use it.
func (c *Client) RemoveImage(ctx context.Context, name string, force bool) (ImageRemoveResult, error) {
	var out ImageRemoveResult
	q := url.Values{}
	if force {
		q.Set("force", "true")
	}
	return out, c.Do(ctx, http.MethodDelete, "/v1/images/"+name+"?"+q.Encode(), nil, &out)
}

// HTTP gives the client's transport (with its TLS identity or unix
// socket) and the base URL of its paths, for protocols under /v1 that are
// not JSON calls, such as content fetches.
func (c *Client) HTTP() (*http.Client, string) { return c.hc, c.base }

// Nodes lists nodes.
func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	var out []Node
	return out, c.Do(ctx, http.MethodGet, "/v1/nodes", nil, &out)
}

// RegisterNode is an agent's greeting.
func (c *Client) RegisterNode(ctx context.Context, reg NodeRegistration) (Node, error) {
	var out Node
	return out, c.Do(ctx, http.MethodPost, "/v1/nodes", reg, &out)
}

// Heartbeat tells the server the agent is alive.
func (c *Client) Heartbeat(ctx context.Context, nodeID string) error {
	return c.Do(ctx, http.MethodPost, "/v1/nodes/"+url.PathEscape(nodeID)+"/heartbeat", nil, nil)
}

// Assignments returns the node's tasks, waiting up to wait for them to
// differ from the answer that carried token.
func (c *Client) Assignments(ctx context.Context, nodeID, token string, wait time.Duration) (Assignments, error) {
	var out Assignments
	q := url.Values{"token": {token}, "wait": {wait.String()}}
	return out, c.Do(ctx, http.MethodGet, "/v1/nodes/"+url.PathEscape(nodeID)+"/assignments?"+q.Encode(), nil, &out)
}

// ReportStatus records what an agent observed of a task.
func (c *Client) ReportStatus(ctx context.Context, taskID string, st TaskStatus) error {
	return c.Do(ctx, http.MethodPut, "/v1/tasks/"+url.PathEscape(taskID)+"/status", st, nil)
}

// DeployOptions are `up`'s flags the server acts on.
type DeployOptions struct {
	RemoveOrphans bool
	ForceRecreate bool
	NoRecreate    bool
	NoStart       bool
	// Confirm holds every changed service at its canary step until
	// `drover promote` or `drover rollback` (up --confirm).
	Confirm bool
}

// Deploy creates or updates a stack with options.
func (c *Client) Deploy(ctx context.Context, spec StackSpec, o DeployOptions) (DeployResult, error) {
	var r DeployResult
	q := url.Values{}
	for k, v := range map[string]bool{"removeOrphans": o.RemoveOrphans, "forceRecreate": o.ForceRecreate, "noRecreate": o.NoRecreate, "noStart": o.NoStart, "confirm": o.Confirm} {
		if v {
			q.Set(k, "true")
		}
	}
	return r, c.Do(ctx, http.MethodPut, "/v1/stacks/"+url.PathEscape(spec.Name)+"?"+q.Encode(), spec, &r)
}

// Revisions lists a stack's kept revisions, oldest first.
func (c *Client) Revisions(ctx context.Context, stack string) ([]StackRevision, error) {
	var out []StackRevision
	return out, c.Do(ctx, http.MethodGet, "/v1/stacks/"+url.PathEscape(stack)+"/revisions", nil, &out)
}

// Rollback returns a stack's services to an earlier revision.
func (c *Client) Rollback(ctx context.Context, stack string, req RollbackRequest) (RolloutResult, error) {
	var out RolloutResult
	return out, c.Do(ctx, http.MethodPost, "/v1/stacks/"+url.PathEscape(stack)+"/rollback", req, &out)
}

// Promote promotes canaries and resumes paused rollouts of a stack.
func (c *Client) Promote(ctx context.Context, stack string, req PromoteRequest) (RolloutResult, error) {
	var out RolloutResult
	return out, c.Do(ctx, http.MethodPost, "/v1/stacks/"+url.PathEscape(stack)+"/promote", req, &out)
}

// ServiceOp stops, starts, restarts, scales or removes a service.
func (c *Client) ServiceOp(ctx context.Context, stack, service, op string, q url.Values) (Service, error) {
	var out Service
	return out, c.Do(ctx, http.MethodPost, "/v1/stacks/"+url.PathEscape(stack)+"/services/"+url.PathEscape(service)+"/"+op+"?"+q.Encode(), nil, &out)
}

// RunOneOff adds a one-off container of a service to a deployed stack.
func (c *Client) RunOneOff(ctx context.Context, stack string, req RunRequest) (Service, error) {
	var out Service
	return out, c.Do(ctx, http.MethodPost, "/v1/stacks/"+url.PathEscape(stack)+"/run", req, &out)
}

// Events streams events as JSON lines.
func (c *Client) Events(ctx context.Context, stack string, follow bool) (io.ReadCloser, error) {
	q := url.Values{}
	if stack != "" {
		q.Set("stack", stack)
	}
	if !follow {
		q.Set("follow", "false")
	}
	resp, err := c.Raw(ctx, http.MethodGet, "/v1/events?"+q.Encode(), nil, "")
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// TaskStats reads a task's resource usage.
func (c *Client) TaskStats(ctx context.Context, id string) (ContainerStats, error) {
	var out ContainerStats
	return out, c.Do(ctx, http.MethodGet, "/v1/tasks/"+url.PathEscape(id)+"/stats", nil, &out)
}

// TaskTop lists a task's processes.
func (c *Client) TaskTop(ctx context.Context, id string) ([]ContainerProcess, error) {
	var out []ContainerProcess
	return out, c.Do(ctx, http.MethodGet, "/v1/tasks/"+url.PathEscape(id)+"/top", nil, &out)
}

// TaskAction pauses, unpauses or signals a task's container.
func (c *Client) TaskAction(ctx context.Context, id, action, signal string) error {
	q := url.Values{}
	if signal != "" {
		q.Set("signal", signal)
	}
	return c.Do(ctx, http.MethodPost, "/v1/tasks/"+url.PathEscape(id)+"/"+action+"?"+q.Encode(), nil, nil)
}

// ArchiveGet reads a tar of path in a task's container.
func (c *Client) ArchiveGet(ctx context.Context, id, path string) (io.ReadCloser, error) {
	resp, err := c.Raw(ctx, http.MethodGet, "/v1/tasks/"+url.PathEscape(id)+"/archive?path="+url.QueryEscape(path), nil, "")
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// ArchivePut unpacks a tar into dir in a task's container.
func (c *Client) ArchivePut(ctx context.Context, id, dir string, tar io.Reader) error {
	resp, err := c.Raw(ctx, http.MethodPut, "/v1/tasks/"+url.PathEscape(id)+"/archive?path="+url.QueryEscape(dir), tar, "application/x-tar")
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// Upgrade protocols of the API's raw connections.
const (
	UpgradeExec  = "drover-exec"
	UpgradeBuild = "drover-buildkit"
)

// Exec starts a process in a task's container and returns the upgraded
// connection carrying frames (see WriteFrame); read through the returned
// reader.
func (c *Client) Exec(ctx context.Context, id string, req ExecRequest) (net.Conn, *bufio.Reader, error) {
	spec, err := json.Marshal(req)
	if err != nil {
		return nil, nil, err
	}
	return c.upgrade(ctx, "/v1/tasks/"+url.PathEscape(id)+"/exec?spec="+url.QueryEscape(string(spec)), UpgradeExec)
}

// BuildSession opens a raw connection to the BuildKit daemon of the node
// that the server picks for builds (node: a node's ID or hostname, or ""),
// for a BuildKit client to speak gRPC over. baseImages are the build's FROM
// images: the node makes those that the cluster holds ready first.
func (c *Client) BuildSession(ctx context.Context, node string, baseImages []string) (net.Conn, error) {
	q := url.Values{}
	if node != "" {
		q.Set("node", node)
	}
	for _, img := range baseImages {
		q.Add("image", img)
	}
	conn, br, err := c.upgrade(ctx, "/v1/build/session?"+q.Encode(), UpgradeBuild)
	if err != nil {
		return nil, err
	}
	if br.Buffered() > 0 {
		return &bufferedConn{Conn: conn, r: br}, nil
	}
	return conn, nil
}

// bufferedConn reads what the response reader already took first.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// upgrade sends a POST that asks to switch to protocol and returns the
// connection once the server has agreed.
func (c *Client) upgrade(ctx context.Context, path, protocol string) (net.Conn, *bufio.Reader, error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, nil, &Error{Code: CodeUnavailable, Message: fmt.Sprintf("cannot reach the Drover server at %s: %v", c.host, err)}
	}
	auth := ""
	if c.bearer != "" {
		auth = "Authorization: Bearer " + c.bearer + "\r\n"
	}
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: drover\r\n%sConnection: Upgrade\r\nUpgrade: %s\r\nContent-Length: 0\r\n\r\n", path, auth, protocol)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer conn.Close()
		return nil, nil, decodeError(resp)
	}
	return conn, br, nil
}

// RunRequest asks for a one-off container of a service (`drover run`).
type RunRequest struct {
	Service    string   `json:"service"`
	Command    []string `json:"command,omitempty"`
	Entrypoint []string `json:"entrypoint,omitempty"`
	Env        []string `json:"env,omitempty"`
	NoDeps     bool     `json:"noDeps,omitempty"`
	// Spec is the service's spec from the client's Compose files, used when
	// the project does not run the service yet.
	Spec *ServiceSpec `json:"spec,omitempty"`
}

// Node reads one node by ID, ID prefix or hostname.
func (c *Client) Node(ctx context.Context, ref string) (Node, error) {
	var out Node
	return out, c.Do(ctx, http.MethodGet, "/v1/nodes/"+url.PathEscape(ref), nil, &out)
}

// UpdateNode changes a node's labels and availability.
func (c *Client) UpdateNode(ctx context.Context, ref string, u NodeUpdate) (Node, error) {
	var out Node
	return out, c.Do(ctx, http.MethodPost, "/v1/nodes/"+url.PathEscape(ref)+"/update", u, &out)
}

// RemoveNode removes a node from the cluster.
func (c *Client) RemoveNode(ctx context.Context, ref string, force bool) error {
	path := "/v1/nodes/" + url.PathEscape(ref)
	if force {
		path += "?force=true"
	}
	return c.Do(ctx, http.MethodDelete, path, nil, nil)
}

// RegistryLogin is a registry's user and password (or token), as `drover
// login` stores them on the servers. No listing or event carries it.
type RegistryLogin struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// registryPath is the API path of a registry's login.
func registryPath(host string) string { return "/v1/registries/" + url.PathEscape(host) }

// RegistryLogin stores the login for the registry at host (docker.io,
// 127.0.0.1:5000, ...) on the servers, replacing any earlier one.
func (c *Client) RegistryLogin(ctx context.Context, host string, login RegistryLogin) error {
	return c.Do(ctx, http.MethodPut, registryPath(host), login, nil)
}

// RegistryLogout removes the login for the registry at host; an
// ErrNotFound error means there was none.
func (c *Client) RegistryLogout(ctx context.Context, host string) error {
	return c.Do(ctx, http.MethodDelete, registryPath(host), nil, nil)
}

// RegistryCredentials reads the login for the registry at host, for an
// agent about to pull from it (node certificates and the server's unix
// socket only). An ErrNotFound error means there is none: pull anonymously.
func (c *Client) RegistryCredentials(ctx context.Context, host string) (RegistryLogin, error) {
	var l RegistryLogin
	return l, c.Do(ctx, http.MethodGet, registryPath(host)+"/credentials", nil, &l)
}
