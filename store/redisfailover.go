package store

import (
	"context"
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"
)

// clusterFailover asks a Cluster client for a fresh slot map whenever a
// command fails for want of a connection. go-redis re-reads the map at once
// on MOVED, but a master that died answers nothing at all, so without this
// the client would keep dialing it after its replica had been promoted,
// until its periodic reload.
type clusterFailover struct{ c *redis.ClusterClient }

func watchFailover(rdb redis.UniversalClient) {
	if c, ok := rdb.(*redis.ClusterClient); ok {
		c.AddHook(clusterFailover{c})
	}
}

// DialHook leaves dialing alone: a Cluster client dials through its nodes'
// clients, never its own hook, and a failed dial surfaces as a failed
// command, which ProcessHook sees.
func (h clusterFailover) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h clusterFailover) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.check(err)
		return err
	}
}

func (h clusterFailover) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.check(err)
		return err
	}
}

// check reloads the slot map after a failure that is not Redis's answer
// (a refused or broken connection, a timeout), or after CLUSTERDOWN.
func (h clusterFailover) check(err error) {
	if err == nil || errors.Is(err, redis.Nil) || errors.Is(err, redis.TxFailedErr) {
		return
	}
	var rerr redis.Error
	if errors.As(err, &rerr) && !isClusterDown(rerr) {
		return
	}
	h.c.ReloadState(context.Background())
}

func isClusterDown(err redis.Error) bool { return strings.HasPrefix(err.Error(), "CLUSTERDOWN") }
