// Package logs keeps each container's stdout and stderr on disk, rotated by
// size, and reads them back for `drover logs`, including following new output
// as it is written.
//
// A container's output is written by a logger process that containerd's runc
// shim starts for the container (a "binary-v2://" log URI that runs
// `drover shim-logger PATH`, see RunShimLogger), not by the agent, so output
// keeps being recorded while the agent restarts. The logger and the readers
// share nothing but the files, and this package defines their format:
//
//   - PATH is the file being written; PATH.1 .. PATH.N-1 are rotated files,
//     PATH.1 the newest of them. WriterOptions.MaxFiles counts them all.
//   - Every line of a file is one JSON object, one entry:
//     {"t":"<RFC 3339 time with nanoseconds>","s":"stdout"|"stderr","l":"<text>"}.
//     The text has no trailing newline; output lines longer than 16 KiB are
//     split into several entries.
//   - The writer rotates before an entry would take PATH past MaxSize, by
//     renaming the chain of files from the oldest down, so at any moment the
//     names, read from the highest number to PATH, give entries in the order
//     they were written. A file is never written after it has been renamed.
//
// Readers (Read) rely on those rules to follow PATH across rotations without
// losing or repeating entries: they hold the files open, recognise them by
// identity (inode) rather than by name, and finish a file that was rotated
// before moving on to its successor. Entries are lost only when a reader falls
// so far behind that a file it has not reached yet is deleted, which needs
// MaxFiles*MaxSize bytes of output within one poll. Lines that cannot be
// decoded, such as an entry half-written when a logger crashed, are skipped.
package logs
