package engine

import (
	"fmt"
	"sync"

	"github.com/customernode/gatekeeper/detect/behavior"
)

// What detection remembers of sources: one behaviour memory per process
// for every site whose handlers agree on its shape (max_sources and the
// app's ipv6_prefix; by default, all of them). A memory outlives config
// reloads: the new config's handlers take it before the old ones let go,
// so a scanner half-way through its walk is not forgotten by a reload.
var memories struct {
	sync.Mutex
	byShape map[string]*heldMemory
}

// heldMemory is a memory and how many handlers hold it.
type heldMemory struct {
	*behavior.Memory
	holders int
}

// TakeMemory returns the process's memory of that shape, making it if no
// handler holds one; every call is balanced by a ReleaseMemory of the key
// it returns.
func TakeMemory(maxSources, ipv6Prefix int) (*behavior.Memory, string) {
	key := fmt.Sprintf("%d/%d", max(maxSources, 0), ipv6Prefix)
	memories.Lock()
	defer memories.Unlock()
	m := memories.byShape[key]
	if m == nil {
		if memories.byShape == nil {
			memories.byShape = map[string]*heldMemory{}
		}
		m = &heldMemory{Memory: behavior.NewMemory(maxSources, ipv6Prefix, now)}
		memories.byShape[key] = m
	}
	m.holders++
	return m.Memory, key
}

// ReleaseMemory lets go of one hold on the memory of key; the memory is
// forgotten when no handler holds it.
func ReleaseMemory(key string) {
	memories.Lock()
	defer memories.Unlock()
	if m := memories.byShape[key]; m != nil {
		if m.holders--; m.holders <= 0 {
			delete(memories.byShape, key)
		}
	}
}

// eachMemory calls f with every memory held.
func eachMemory(f func(*behavior.Memory)) {
	memories.Lock()
	defer memories.Unlock()
	for _, m := range memories.byShape {
		f(m.Memory)
	}
}
