// Command frames measures the stack a benign request's decision uses: the
// deepest chain of Gatekeeper's own stack frames from the handler's
// ServeHTTP, counting only the calls a benign request makes.
//
// It takes the frame sizes and call sites from the compiler (go build
// -gcflags=-S on the real build), and which call sites a benign request
// reaches from a coverage profile of TestBenignDecisionCoverage (an
// approved and an unapproved browser request through a provisioned
// handler, detection on). An interface or closure call is followed to the
// executed functions of the module with the method's name on that line.
// It prints the deepest chain and fails when it is over -max bytes.
//
//	go run ./scripts/frames [-max 1024] [-v]
//
// See docs/performance.md.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

const (
	module = "github.com/customernode/gatekeeper"
	root   = module + "/caddymodule.(*Handler).ServeHTTP"
	// retAddr is what a call pushes besides the callee's frame (amd64 and
	// arm64 alike keep the frame pointer inside the frame).
	retAddr = 8
)

func main() {
	limit := flag.Int("max", 1024, "fail when the deepest chain uses more than this many bytes of stack")
	verbose := flag.Bool("v", false, "list every function on the benign path with its frame")
	flag.Parse()
	if err := run(*limit, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "frames:", err)
		os.Exit(1)
	}
}

func run(limit int, verbose bool) error {
	dir, err := os.MkdirTemp("", "frames")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fns, err := compile()
	if err != nil {
		return err
	}
	ran, err := covered(dir)
	if err != nil {
		return err
	}
	g := graph(fns, ran)
	chain, total := g.deepest(root, map[string]bool{})
	if len(chain) == 0 {
		return fmt.Errorf("%s is not in the compiler's output", root)
	}
	fmt.Printf("deepest chain of a benign decision: %d bytes of stack in %d frames (limit %d)\n", total, len(chain), limit)
	for _, name := range chain {
		fmt.Printf("  %5d  %s\n", fns[name].frame+retAddr, strings.TrimPrefix(name, module+"/"))
	}
	if verbose {
		fmt.Println("every function the benign path reaches:")
		var all []string
		for name := range g.reached(root, map[string]bool{}) {
			all = append(all, name)
		}
		slices.SortFunc(all, func(a, b string) int { return fns[b].frame - fns[a].frame })
		for _, name := range all {
			fmt.Printf("  %5d  %s\n", fns[name].frame+retAddr, strings.TrimPrefix(name, module+"/"))
		}
	}
	if total > limit {
		return fmt.Errorf("the deepest chain uses %d bytes of stack, over %d", total, limit)
	}
	return nil
}

// fn is one compiled function of the module.
type fn struct {
	frame int
	calls []call
}

// call is a call site: its source position, and its target when the
// compiler named it ("" for an indirect call).
type call struct {
	file   string // relative to the module
	line   int
	target string
}

var (
	textLine = regexp.MustCompile(`^(\S+) STEXT.* locals=(0x[0-9a-f]+)`)
	callLine = regexp.MustCompile(`^\s+0x[0-9a-f]+ \d+ \(([^)]+):(\d+)\)\s+CALL\s+(\S+)`)
)

// compile builds the gatekeeper binary with the compiler's assembly
// listing of the module's packages and reads each function's frame size
// and call sites.
func compile() (map[string]*fn, error) {
	cmd := exec.Command("go", "build", "-gcflags="+module+"/...=-S", "-o", os.DevNull, "./cmd/gatekeeper")
	var out bytes.Buffer
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go build: %w\n%s", err, out.Bytes()[:min(out.Len(), 4000)])
	}
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	fns := map[string]*fn{}
	var cur *fn
	sc := bufio.NewScanner(&out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := textLine.FindStringSubmatch(line); m != nil {
			size, _ := strconv.ParseInt(m[2], 0, 64)
			if !strings.HasPrefix(m[1], module+"/") {
				cur = nil
				continue
			}
			cur = &fn{frame: int(size)}
			fns[m[1]] = cur
			continue
		}
		if cur == nil {
			continue
		}
		if m := callLine.FindStringSubmatch(line); m != nil {
			rel, err := filepath.Rel(wd, m[1])
			if err != nil || strings.HasPrefix(rel, "..") {
				continue // a call inlined from outside the module
			}
			n, _ := strconv.Atoi(m[2])
			c := call{file: filepath.ToSlash(rel), line: n}
			if t, ok := strings.CutSuffix(m[3], "(SB)"); ok {
				c.target = t
			}
			cur.calls = append(cur.calls, c)
		}
	}
	return fns, sc.Err()
}

// lines is the set of source lines (file relative to the module, line)
// a benign decision ran.
type lines map[string]map[int]bool

// covered runs TestBenignDecisionCoverage with a coverage profile of the
// module and returns the lines it ran. The profile holds the handler's
// set-up too, but set-up code is not reachable from ServeHTTP, and a call
// is followed only from a function the chain reaches.
func covered(dir string) (lines, error) {
	profile := filepath.Join(dir, "profile.txt")
	cmd := exec.Command("go", "test", "-count=1", "-covermode=count", "-coverpkg="+module+"/...", "-coverprofile="+profile,
		"-run", "^TestBenignDecisionCoverage$", "./caddymodule/")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go test: %w\n%s", err, out)
	}
	b, err := os.ReadFile(profile)
	if err != nil {
		return nil, err
	}
	// github.com/customernode/gatekeeper/policy/decide.go:12.34,15.2 3 1
	block := regexp.MustCompile(`^` + regexp.QuoteMeta(module) + `/(\S+):(\d+)\.\d+,(\d+)\.\d+ \d+ (\d+)$`)
	ran := lines{}
	for l := range strings.SplitSeq(string(b), "\n") {
		m := block.FindStringSubmatch(l)
		if m == nil || m[4] == "0" {
			continue
		}
		from, _ := strconv.Atoi(m[2])
		to, _ := strconv.Atoi(m[3])
		if ran[m[1]] == nil {
			ran[m[1]] = map[int]bool{}
		}
		for n := from; n <= to; n++ {
			ran[m[1]][n] = true
		}
	}
	if len(ran) == 0 {
		return nil, fmt.Errorf("the coverage profile shows nothing run")
	}
	return ran, nil
}

// callGraph is the module's calls a benign decision made.
type callGraph struct {
	fns   map[string]*fn
	edges map[string][]string
}

// graph keeps the calls made from lines a benign decision ran, and
// follows an indirect call to the functions of the module that ran with
// the name called on its line.
func graph(fns map[string]*fn, ran lines) *callGraph {
	byName := map[string][]string{}
	for name, f := range fns {
		if f.ranIn(ran) {
			byName[shortName(name)] = append(byName[shortName(name)], name)
		}
	}
	src := map[string][]string{}
	g := &callGraph{fns: fns, edges: map[string][]string{}}
	for name, f := range fns {
		for _, c := range f.calls {
			if !ran[c.file][c.line] {
				continue
			}
			if c.target != "" {
				if _, ok := fns[c.target]; ok {
					g.edges[name] = append(g.edges[name], c.target)
				}
				continue
			}
			if src[c.file] == nil {
				b, _ := os.ReadFile(c.file)
				src[c.file] = strings.Split(string(b), "\n")
			}
			if c.line-1 >= len(src[c.file]) {
				continue
			}
			for _, m := range calledName.FindAllStringSubmatch(src[c.file][c.line-1], -1) {
				for _, t := range byName[m[1]] {
					if t != name {
						g.edges[name] = append(g.edges[name], t)
					}
				}
			}
		}
	}
	return g
}

// calledName finds the names called on a line: x.Name( or Name(.
var calledName = regexp.MustCompile(`(\w+)\(`)

// shortName is a function's name without its package and receiver.
func shortName(name string) string { return name[strings.LastIndex(name, ".")+1:] }

// ranIn reports whether any call site or... any line of f ran; a
// function without calls counts as run when its caller's call ran, which
// graph decides.
func (f *fn) ranIn(ran lines) bool {
	for _, c := range f.calls {
		if ran[c.file][c.line] {
			return true
		}
	}
	return len(f.calls) == 0
}

// deepest is the chain of frames from name that uses the most stack, and
// how much.
func (g *callGraph) deepest(name string, onPath map[string]bool) ([]string, int) {
	f, ok := g.fns[name]
	if !ok || onPath[name] {
		return nil, 0
	}
	onPath[name] = true
	defer delete(onPath, name)
	var best []string
	most := 0
	for _, t := range g.edges[name] {
		if chain, n := g.deepest(t, onPath); n > most {
			best, most = chain, n
		}
	}
	return append([]string{name}, best...), f.frame + retAddr + most
}

// reached is every function the benign path reaches from name.
func (g *callGraph) reached(name string, seen map[string]bool) map[string]bool {
	if seen[name] {
		return seen
	}
	seen[name] = true
	for _, t := range g.edges[name] {
		g.reached(t, seen)
	}
	return seen
}
