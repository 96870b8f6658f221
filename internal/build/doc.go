// Package build builds the images of a Compose project's services with
// BuildKit, for `drover build` and `drover up`.
//
// It is BuildKit's client: the CLI reaches the buildkitd of a node through
// the server (an upgraded API connection, see api.Client.BuildSession),
// sends the build context, Dockerfile and secrets in BuildKit's session,
// and shows BuildKit's progress as Docker Compose does. Each build exports
// twice in one solve: into the node's containerd (where it runs at once)
// and as an OCI archive that goes to the server's content store, from
// which every other node fetches it. A build never needs a registry.
package build
