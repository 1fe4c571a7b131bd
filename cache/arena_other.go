//go:build !linux

package cache

// allocChunk takes a chunk from the Go heap.
func allocChunk(n int64) []byte { return make([]byte, n) }
