package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A flood of browser requests, each from a new public address through a
// trusted proxy, fills the tracker up to max_sources and no further; the
// tracker holds at most 64 bytes a source (with what the heap gained after
// a warm-up), and a scanner's probe walk, spread thin through the flood,
// is still caught. make bench runs it with 2 100 000 sources and the
// default cap of 1 000 000.
func TestSourceFloodMemory(t *testing.T) {
	f := runSourceFlood(t, 150_000, 65_536)
	f.log(t)
	// At this size the tracker's page-sized pieces (a page of slots and one
	// of networks a shard) add some 5 bytes a source;
	// TestFloodKeepsMemoryBoundedAndStillCatchesTheScanner holds a million
	// sources to 64 bytes, and make bench runs this flood at that size.
	if per := float64(f.tracker) / float64(f.tracked); per > 72 {
		t.Errorf("the tracker holds %.0f bytes a source, want at most 72 here", per)
	}
	// The heap must not grow with the sources: after the warm-up, what it
	// gains is noise from the requests themselves.
	if grew := int64(f.heap) - int64(f.heapBefore); grew > 4<<20 {
		t.Errorf("the heap grew %d KiB during the flood, want under 4 MiB", grew>>10)
	}
	if f.tracked > 65_536 {
		t.Errorf("%d sources tracked, over max_sources 65536", f.tracked)
	}
}

// BenchmarkSourceFlood is TestSourceFloodMemory at 2 100 000 sources with
// the default cap; docs/performance.md records its figures.
func BenchmarkSourceFlood(b *testing.B) {
	for range b.N {
		f := runSourceFlood(b, 2_100_000, 0)
		b.ReportMetric(f.perSource, "B/source")
		b.ReportMetric(float64(f.tracker)/(1<<20), "tracker_MiB")
		b.ReportMetric(float64(f.rss)/(1<<20), "rss_MiB")
		b.ReportMetric(float64(f.heap)/(1<<20), "heap_inuse_MiB")
		b.ReportMetric(f.rate, "req/s")
		f.log(b)
	}
}

type sourceFlood struct {
	sources, tracked int
	heapBefore, heap uint64 // heap in use after the warm-up and at the end, bytes
	tracker          uint64 // what the tracker holds at the end, outside the heap, bytes
	rss              uint64 // resident set size after the flood, bytes
	perSource        float64
	rate             float64 // requests/s
	caughtAfter      int     // the scanner's probes before its first refusal
}

func (f sourceFlood) log(t testing.TB) {
	t.Logf("%d sources at %.0f req/s: %d tracked in %.1f MiB; heap in use %.1f MiB after the warm-up, %.1f MiB at the end; "+
		"%.0f B a tracked source; RSS %.1f MiB; the scanner was refused at its probe %d",
		f.sources, f.rate, f.tracked, float64(f.tracker)/(1<<20), float64(f.heapBefore)/(1<<20), float64(f.heap)/(1<<20),
		f.perSource, float64(f.rss)/(1<<20), f.caughtAfter)
}

// runSourceFlood sends n browser requests, one a new source, to one
// instance whose tracker holds maxSources (the default when 0), with a
// scanner's probe among them every n/40 requests.
func runSourceFlood(tb testing.TB, n, maxSources int) sourceFlood {
	globals := behindProxy("\t\tstore file data")
	site := webSite(tb, "block")
	if maxSources > 0 {
		site = strings.Replace(site, "mode block", fmt.Sprintf("mode block\n\t\tdetect {\n\t\t\tmax_sources %d\n\t\t}", maxSources), 1)
	}
	in := startSite(tb, globals, site)
	proxy := proxyClient()
	f := sourceFlood{sources: n}
	source := func(i int) string { return ipv4(0x0b000000 + i) } // 11.0.0.0 onwards: public, so their /24s are tracked too
	probes := []string{"/.env", "/.git/config", "/wp-config.php.bak", "/backup.sql", "/phpinfo.php", "/.aws/credentials",
		"/server-status", "/config.json.bak", "/.DS_Store", "/admin/.htpasswd"}
	var probesSent, caughtAt atomic.Int64
	send := func(from, to int) {
		const workers = 16
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := from + w; i < to; i += workers {
					if code := get(proxy, in.Site, "/", "X-Forwarded-For", source(i), "User-Agent", firefox,
						"Accept", "text/html,*/*;q=0.8", "Accept-Language", "en"); code != 200 {
						tb.Errorf("browser %s: %d, want 200", source(i), code)
						return
					}
					if i%(n/40) == 0 && caughtAt.Load() == 0 {
						k := probesSent.Add(1)
						if get(proxy, in.Site, probes[int(k-1)%len(probes)], "X-Forwarded-For", "203.0.113.66", "User-Agent", firefox) == 403 {
							caughtAt.CompareAndSwap(0, k)
						}
					}
				}
			})
		}
		wg.Wait()
	}
	// The first tenth warms up connections, buffers and pools; bytes a
	// source are counted from there.
	warm := n / 10
	start := time.Now()
	send(0, warm)
	f.heapBefore = heapInUse(tb, in)
	trackedBefore := metricValue(tb, in, "caddy_gatekeeper_tracked_sources")
	send(warm, n)
	f.rate = float64(n) / time.Since(start).Seconds()
	f.caughtAfter = int(caughtAt.Load())
	if f.caughtAfter == 0 {
		tb.Errorf("the scanner's %d probes in the flood were never refused", probesSent.Load())
	}
	f.tracked = int(metricValue(tb, in, "caddy_gatekeeper_tracked_sources"))
	f.heap = heapInUse(tb, in)
	f.rss = rss(tb, in.cmd.Process.Pid)
	f.tracker = uint64(metricValue(tb, in, "caddy_gatekeeper_tracker_bytes"))
	grew := max(float64(f.heap)-float64(f.heapBefore), 0) / max(float64(f.tracked)-trackedBefore, 1)
	f.perSource = float64(f.tracker)/float64(max(f.tracked, 1)) + grew
	return f
}

// rss is the resident set size of process pid, from /proc.
func rss(tb testing.TB, pid int) uint64 {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				tb.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb << 10
		}
	}
	tb.Fatal("no VmRSS in /proc status")
	return 0
}
