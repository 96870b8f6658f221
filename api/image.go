package api

import "time"

// Image is an image held by a node's containerd.
type Image struct {
	Name      string    `json:"name"`
	Digest    string    `json:"digest"`
	Size      int64     `json:"size"`
	CreatedAt time.Time `json:"createdAt,omitzero"`
	Nodes     []string  `json:"nodes,omitempty"`
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
