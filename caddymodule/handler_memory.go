package caddymodule

import (
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"github.com/customernode/gatekeeper/detect/behavior"
)

// sharedMemory is a detect.Memory in the pool.
type sharedMemory struct{ *behavior.Memory }

// Destruct lets the memory go; nothing else holds it.
func (sharedMemory) Destruct() error { return nil }

// memoryKey names the memory of a given shape.
func memoryKey(maxSources, ipv6Prefix int) string {
	return fmt.Sprintf("detect-memory/%d/%d", max(maxSources, 0), ipv6Prefix)
}

// takeMemory returns the process's memory of that shape, making it if no
// loaded config has one; every call is balanced by a memories.Delete(key).
func takeMemory(key string, maxSources, ipv6Prefix int) (*behavior.Memory, error) {
	val, _, err := memories.LoadOrNew(key, func() (caddy.Destructor, error) {
		return sharedMemory{behavior.NewMemory(maxSources, ipv6Prefix, now)}, nil
	})
	if err != nil {
		return nil, err
	}
	return val.(sharedMemory).Memory, nil
}

// eachMemory calls f with every memory in use.
func eachMemory(f func(*behavior.Memory)) {
	memories.Range(func(_, v any) bool { f(v.(sharedMemory).Memory); return true })
}

// memories hold what detection knows of sources, one per process for every
// site whose handlers agree on its shape (max_sources and the app's
// ipv6_prefix; by default, all of them). A memory outlives config reloads:
// the new config's handlers take it before the old ones let go, so a
// scanner half-way through its walk is not forgotten by a reload.
var memories = caddy.NewUsagePool()
