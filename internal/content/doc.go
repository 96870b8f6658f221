// Package content keeps image content (manifests, configs and layers, by
// digest) on disk so that a cluster without a registry can hand images to its
// nodes.
//
// A Store is a directory:
//
//	blobs/<algorithm>/<hex>          verified blobs, written atomically
//	ingest/<algorithm>/<hex>.partial resumable writes (Writer), kept across restarts
//	tmp/                             whole-blob writes in progress
//	images/<sha256 of name>.json     image records
//
// Every blob is checked against its digest and size before it becomes
// visible, so a reader never sees a torn or corrupt blob. Image records are
// small JSON files that the Store also keeps in memory; blobs are only ever
// streamed.
//
// ReadArchive reads an OCI image-layout or `docker save` archive (optionally
// gzip-compressed) into a Store and names its images the way the containerd
// driver names imported images. Handler serves a Store's blobs (with Range
// requests) and records over HTTP, and Fetcher copies the blobs a node lacks
// from such a server into the node's own Store, resuming broken transfers.
//
// Blobs that no image record names are garbage: GC removes them, but never
// while an import or fetch into the same Store is in progress.
package content
