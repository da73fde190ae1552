//go:build unix

package behavior

import (
	"fmt"
	"syscall"
)

// allocPages returns n bytes of zeroed memory outside the Go heap, mapped
// from the kernel (as VictoriaMetrics' fastcache does for its chunks): the
// tracker's states hold no pointers, so the collector needs neither to
// scan them nor to count them toward its heap goal, which would double
// what a million sources cost in resident memory. Pages are only resident
// once touched.
func allocPages(n int) []byte {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		panic(fmt.Sprintf("detect: mapping %d bytes for the tracker: %v", n, err))
	}
	return b
}

// freePages gives back memory from allocPages.
func freePages(b []byte) {
	if err := syscall.Munmap(b); err != nil {
		panic(fmt.Sprintf("detect: unmapping the tracker's memory: %v", err))
	}
}
