package engine

import (
	"testing"

	"github.com/customernode/gatekeeper/detect/behavior"
)

// A reload's new handlers take the detection memory before the old ones
// let go: they get the same memory, which outlives the old handlers; a
// handler of another shape gets a memory of its own; the last handler to
// let go leaves nothing held (what caddy.UsagePool did before).
func TestMemoryOutlivesAReloadAndNotItsLastHandler(t *testing.T) {
	held := func() int {
		n := 0
		eachMemory(func(*behavior.Memory) { n++ })
		return n
	}
	before := held()
	old, key := TakeMemory(0, 64)
	reloaded, key2 := TakeMemory(0, 64)
	if reloaded != old || key2 != key {
		t.Fatal("a reload's handler got another memory than the running one's")
	}
	other, otherKey := TakeMemory(1000, 64)
	if other == old || otherKey == key {
		t.Fatal("a handler of another max_sources shares the memory")
	}
	v6, v6Key := TakeMemory(0, 56)
	if v6 == old || v6Key == key {
		t.Fatal("a handler of another ipv6_prefix shares the memory")
	}
	ReleaseMemory(otherKey)
	ReleaseMemory(v6Key)
	ReleaseMemory(key) // the old config's handler
	if again, _ := TakeMemory(0, 64); again != old {
		t.Fatal("the memory was forgotten while the reloaded handler held it")
	}
	ReleaseMemory(key)
	ReleaseMemory(key2)
	ReleaseMemory(key2) // one release too many changes nothing
	if n := held(); n != before {
		t.Fatalf("%d memories held after every handler let go, want %d", n, before)
	}
}
