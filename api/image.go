package api

import "time"

// Image is an image of the cluster: in the server's content store (from
// which nodes fetch it), held by nodes' containerd, or both.
type Image struct {
	Name      string    `json:"name"`
	Digest    string    `json:"digest"`
	Size      int64     `json:"size"`
	CreatedAt time.Time `json:"createdAt,omitzero"`
	// Stored says the server's content store holds it, so every node can
	// run it.
	Stored bool     `json:"stored,omitempty"`
	Nodes  []string `json:"nodes,omitempty"`
}

// ImageLoadResult lists the images an archive held.
type ImageLoadResult struct {
	Images []Image `json:"images"`
}

// LogEntry is one line of a container's output.
type LogEntry struct {
	Time   time.Time `json:"time"`
	Stream string    `json:"stream"` // stdout or stderr
	Line   string    `json:"line"`
	Task   string    `json:"task,omitempty"`
}

// Version describes a Drover binary.
type Version struct {
	Version   string `json:"version"`
	GoVersion string `json:"goVersion"`
	API       string `json:"api"`
}

// ImageRemoveResult says where `image rm` removed an image: the server's
// content store and the nodes that held it.
type ImageRemoveResult struct {
	Name   string   `json:"name"`
	Stored bool     `json:"stored,omitempty"` // it was in the server's content store
	Nodes  []string `json:"nodes,omitempty"`  // nodes whose containerd held it
	// Failed are nodes that could not be reached or refused, with why;
	// they fetch nothing more of the image, and `image rm` again cleans
	// them up.
	Failed map[string]string `json:"failed,omitempty"`
}
