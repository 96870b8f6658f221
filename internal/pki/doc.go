// Package pki is the cluster's public-key infrastructure: it creates and
// keeps the cluster CA, issues the server's certificate and signs node
// certificates, makes and parses join tokens, and builds the tls.Configs
// that agents, the server and remote clients talk through.
//
// Joining follows Docker Swarm and kubeadm. `drover node token` prints a
// Token that carries the SHA-256 fingerprint of the CA certificate and a
// random secret. An agent that has nothing but the token dials the server
// with PinnedClientConfig, which accepts the server only if the chain it
// presents holds the CA with that fingerprint and the server's certificate
// verifies against that CA. The agent then sends the secret and a CSR
// (NewKeyAndCSR); the server compares the secret with SecretMatches and
// answers with a node certificate (SignNode) and the CA's PEM. From then on
// both sides use mutual TLS (ClientConfig, ServerConfig), and agents renew
// their certificate once NeedsRenewal says so.
//
// Certificates carry their role in the subject's OU: "drover-node" for
// nodes (the CN is the node ID, see NodeIDOf) and "drover-server" for the
// server (IsServerCert). Node certificates are valid for TLS servers too,
// because agents serve logs and exec to the server, so a peer that must be
// the server is checked by role (RequireServer), not only by chain.
//
// Nothing here reads the clock or logs: callers pass now, and a Token's
// secret is redacted when it is logged through log/slog.
package pki
