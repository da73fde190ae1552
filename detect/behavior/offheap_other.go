//go:build !unix

package behavior

// allocPages returns n bytes of zeroed memory, from the Go heap where
// memory cannot be mapped (see offheap_unix.go).
func allocPages(n int) []byte { return make([]byte, n) }

// freePages leaves memory from allocPages to the collector.
func freePages([]byte) {}
