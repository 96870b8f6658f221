// Package hostload reads the host's load, which benchmarks print beside
// their figures: the test machines are shared, and other work skews them.
package hostload
