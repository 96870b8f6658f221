// Package testenv lets tests state what they need from the machine (root,
// containerd, runc, CNI plugins). Outside CI a missing prerequisite skips
// the test; with CI=true it fails it, so CI can never pass by skipping.
package testenv
