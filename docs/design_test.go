// Package docs holds no code: its tests hold design.md's package picture to
// the module's packages and their imports, beside the document they check.
package docs

import (
	"errors"
	"fmt"
	"go/build"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// The picture at the top of design.md is drawn by hand, so it drifts from
// the code unless something holds it there. These tests read it as a grid:
// package names (paths inside the module, such as detect/campaign) wherever
// they stand, and arrows drawn with ─ │ ┌ ┐ └ ┘ ├ ┤ ┬ ┴ ┼ and a head
// (▶ ◀ ▼ ▲), each from the package its tail touches to the one its head
// touches. Arrows point at what a package imports.
//
// A tail touches the package it starts next to, beside it past spaces or a
// note in parentheses ("caddymodule (glue) ──▶ …"), or above or below it
// past the note written under it; a head touches the name it points at,
// past spaces. An end at other words ("Caddy ──▶ caddymodule") is outside
// the module and not checked.

// TestDesignPictureNamesEveryPackage: every package of the product is in
// the picture, a new one too.
func TestDesignPictureNamesEveryPackage(t *testing.T) {
	pkgs := modulePackages(t)
	pic := readPicture(t, pkgs)
	var missing []string
	for _, p := range sortedKeys(pkgs) {
		if pkgs[p].pictured && !pic.named[p] {
			missing = append(missing, "\t"+p+": "+placing(pkgs, p))
		}
	}
	if len(missing) > 0 {
		t.Errorf("docs/design.md's package picture (the first ``` block, lines %d–%d) does not name %d of the module's packages:\n%s\n"+
			"Draw each by its path below the packages that import it, with an arrow from one of them to its name "+
			"(arrows point at what a package imports), and say in a note what it is for.",
			pic.first, pic.first+len(pic.rows)-1, len(missing), strings.Join(missing, "\n"))
	}
}

// TestDesignPictureArrowsAreImports: every arrow drawn between two packages
// is an import the code has.
func TestDesignPictureArrowsAreImports(t *testing.T) {
	pkgs := modulePackages(t)
	pic := readPicture(t, pkgs)
	for _, p := range pic.problems {
		t.Error(p)
	}
	for _, a := range pic.arrows {
		if !slices.Contains(pkgs[a.from].imports, a.to) {
			t.Errorf("docs/design.md line %d draws %s ──▶ %s, but %s does not import %s (it imports %s)",
				a.line, a.from, a.to, a.from, a.to, list(pkgs[a.from].imports, "none of the module's packages"))
		}
	}
	if len(pic.arrows) < 10 {
		t.Fatalf("read only %d arrows between packages in docs/design.md's picture; the test would prove little "+
			"(see design_test.go for how it reads arrows)", len(pic.arrows))
	}
}

// TestDesignPictureReachesEveryPackage: every package in the picture that
// another imports has an arrow to it from one that does, so that the
// picture shows where each package sits.
func TestDesignPictureReachesEveryPackage(t *testing.T) {
	pkgs := modulePackages(t)
	pic := readPicture(t, pkgs)
	reached := map[string]bool{}
	for _, a := range pic.arrows {
		if slices.Contains(pkgs[a.from].imports, a.to) {
			reached[a.to] = true
		}
	}
	for _, p := range sortedKeys(pkgs) {
		if importers := pkgs.importers(p); pkgs[p].pictured && pic.named[p] && !reached[p] && len(importers) > 0 {
			t.Errorf("docs/design.md's package picture names %s, but no arrow points at it: draw one from a package that imports it (%s)",
				p, list(importers, ""))
		}
	}
}

// pkg is one of the module's packages.
type pkg struct {
	// imports are the module's packages it imports (test files left out),
	// by their paths inside the module.
	imports []string
	// pictured: the picture must show it. It shows every package of the
	// product; it leaves out the end-to-end suite, scripts, the helpers
	// under internal/ (the prose under the picture names them) and
	// test-support packages (a name ending in "test" that imports testing,
	// as net/http/httptest does).
	pictured bool
}

type packages map[string]*pkg

// modulePackages reads the module's packages from the source tree, as go
// build sees it on this machine.
func modulePackages(t *testing.T) packages {
	t.Helper()
	mod := modulePath(t)
	pkgs := packages{}
	err := filepath.WalkDir("..", func(dir string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if dir != ".." && (strings.HasPrefix(d.Name(), ".") || strings.HasPrefix(d.Name(), "_") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		bp, err := build.ImportDir(dir, 0)
		var noGo *build.NoGoError
		if errors.As(err, &noGo) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(bp.GoFiles)+len(bp.CgoFiles) == 0 {
			return nil // tests alone, as here in docs/: no package to draw
		}
		rel, err := filepath.Rel("..", dir)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		p := &pkg{pictured: !(rel == "e2e" || strings.HasPrefix(rel, "e2e/") || strings.HasPrefix(rel, "scripts/") ||
			strings.HasPrefix(rel, "internal/") || strings.HasSuffix(bp.Name, "test") && slices.Contains(bp.Imports, "testing"))}
		for _, imp := range bp.Imports {
			if in, ok := strings.CutPrefix(imp, mod+"/"); ok {
				p.imports = append(p.imports, in)
			}
		}
		pkgs[rel] = p
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) < 10 {
		t.Fatalf("found only %d packages under the module's root; the test would prove little", len(pkgs))
	}
	return pkgs
}

// modulePath is the module's path, from its go.mod.
func modulePath(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if m, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			return strings.TrimSpace(m)
		}
	}
	t.Fatal("../go.mod names no module")
	return ""
}

// importers are the pictured packages that import p.
func (pkgs packages) importers(p string) []string {
	var out []string
	for _, q := range sortedKeys(pkgs) {
		if pkgs[q].pictured && slices.Contains(pkgs[q].imports, p) {
			out = append(out, q)
		}
	}
	return out
}

// placing says where p belongs in the picture: under its importers, over
// what it imports.
func placing(pkgs packages, p string) string {
	var own []string
	for _, q := range pkgs[p].imports {
		if pkgs[q] != nil && pkgs[q].pictured {
			own = append(own, q)
		}
	}
	return "imported by " + list(pkgs.importers(p), "no pictured package yet") + "; imports " + list(own, "no pictured package")
}

// list is s for a message, or none when s is empty.
func list(s []string, none string) string {
	if len(s) == 0 {
		return none
	}
	return strings.Join(s, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// picture is what the tests read of the package picture.
type picture struct {
	first    int // design.md's line number of the grid's first row
	rows     [][]rune
	label    [][]string // the package whose name covers each cell, or ""
	named    map[string]bool
	arrows   []arrow
	problems []string // arrows the tests cannot follow
}

// arrow is one arrow between two packages.
type arrow struct {
	from, to string
	line     int // design.md's line of its head
}

// The sides a line-drawing rune joins, and the side an arrowhead points to
// (it joins the opposite one).
const (
	up = 1 << iota
	right
	down
	left
)

var joins = map[rune]int{
	'─': left | right, '│': up | down, '┌': right | down, '┐': left | down, '└': up | right, '┘': up | left,
	'├': up | down | right, '┤': up | down | left, '┬': left | right | down, '┴': left | right | up, '┼': up | right | down | left,
	'▶': left, '◀': right, '▼': up, '▲': down,
}

var heads = map[rune]int{'▶': right, '◀': left, '▼': down, '▲': up}

func opposite(side int) int {
	switch side {
	case up:
		return down
	case down:
		return up
	case left:
		return right
	}
	return left
}

func step(side int) (dr, dc int) {
	switch side {
	case up:
		return -1, 0
	case down:
		return 1, 0
	case left:
		return 0, -1
	}
	return 0, 1
}

// readPicture reads the first fenced block of design.md, naming the cells
// every package of pkgs covers, and follows its arrows.
func readPicture(t *testing.T, pkgs packages) *picture {
	t.Helper()
	b, err := os.ReadFile("design.md")
	if err != nil {
		t.Fatal(err)
	}
	pic := &picture{named: map[string]bool{}}
	inside := false
	for i, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			if inside {
				break
			}
			inside, pic.first = true, i+2
			continue
		}
		if inside {
			pic.rows = append(pic.rows, []rune(line))
		}
	}
	if len(pic.rows) == 0 {
		t.Fatal("docs/design.md has no ``` block for the package picture")
	}
	width := 0
	for _, r := range pic.rows {
		width = max(width, len(r))
	}
	for i := range pic.rows {
		for len(pic.rows[i]) < width {
			pic.rows[i] = append(pic.rows[i], ' ')
		}
		pic.label = append(pic.label, make([]string, width))
	}
	names := sortedKeys(pkgs)
	slices.SortStableFunc(names, func(a, b string) int { return len(b) - len(a) }) // detect/campaign before detect
	for _, name := range names {
		pic.findName(name)
	}
	pic.followArrows()
	return pic
}

// findName labels the cells of every whole-word occurrence of name.
func (pic *picture) findName(name string) {
	n := []rune(name)
	for r, row := range pic.rows {
		for c := 0; c+len(n) <= len(row); c++ {
			if !slices.Equal(row[c:c+len(n)], n) || c > 0 && (inPath(row[c-1]) || row[c-1] == '.') ||
				c+len(n) < len(row) && inPath(row[c+len(n)]) || pic.label[r][c] != "" {
				continue
			}
			for i := range n {
				pic.label[r][c+i] = name
			}
			pic.named[name] = true
		}
	}
}

func inPath(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '-' || r == '/'
}

func (pic *picture) at(r, c int) rune {
	if r < 0 || r >= len(pic.rows) || c < 0 || c >= len(pic.rows[r]) {
		return 0
	}
	return pic.rows[r][c]
}

// joined reports whether the cell at r, c and its neighbour on side join.
func (pic *picture) joined(r, c, side int) bool {
	dr, dc := step(side)
	return joins[pic.at(r, c)]&side != 0 && joins[pic.at(r+dr, c+dc)]&opposite(side) != 0
}

// followArrows gathers each drawing of joined lines and heads, and makes an
// arrow from every package its loose ends touch to every package its heads
// point at.
func (pic *picture) followArrows() {
	seen := map[[2]int]bool{}
	for r, row := range pic.rows {
		for c := range row {
			if joins[row[c]] == 0 || seen[[2]int{r, c}] {
				continue
			}
			var from, to []string
			var headAt []int
			outside := false
			queue := [][2]int{{r, c}}
			seen[[2]int{r, c}] = true
			for len(queue) > 0 {
				cell := queue[0]
				queue = queue[1:]
				cr, cc := cell[0], cell[1]
				for _, side := range []int{up, right, down, left} {
					if joins[pic.at(cr, cc)]&side == 0 {
						continue
					}
					dr, dc := step(side)
					next := [2]int{cr + dr, cc + dc}
					switch {
					case pic.joined(cr, cc, side):
						if !seen[next] {
							seen[next] = true
							queue = append(queue, next)
						}
					default: // a loose end: what does it start from?
						if name, word := pic.tailTouches(cr, cc, side); name != "" {
							from = append(from, name)
						} else {
							outside = outside || word
						}
					}
				}
				if side, ok := heads[pic.at(cr, cc)]; ok {
					name := pic.headTouches(cr, cc, side)
					if name == "" {
						pic.problem(cr, cc, "points at no package name")
						continue
					}
					if name != "\x00" {
						to, headAt = append(to, name), append(headAt, cr)
					}
				}
			}
			if len(to) > 0 && len(from) == 0 && !outside {
				pic.problem(r, c, "starts at no package name")
			}
			for _, f := range from {
				for i, t := range to {
					if f != t {
						pic.arrows = append(pic.arrows, arrow{from: f, to: t, line: pic.first + headAt[i]})
					}
				}
			}
		}
	}
}

func (pic *picture) problem(r, c int, what string) {
	pic.problems = append(pic.problems, fmt.Sprintf("docs/design.md line %d, column %d: the arrow drawn there %s; "+
		"see design_test.go for how the picture is read", pic.first+r, c+1, what))
}

// tailTouches is the package a loose end at r, c on side starts from, or
// word when it starts from words that name none (something outside the
// module). Sideways it looks past spaces and a note in parentheses; up or
// down, past the note written under or over a name.
func (pic *picture) tailTouches(r, c, side int) (name string, word bool) {
	dr, dc := step(side)
	for r, c = r+dr, c+dc; ; r, c = r+dr, c+dc {
		ch := pic.at(r, c)
		switch {
		case ch == 0 || joins[ch] != 0:
			return "", false
		case pic.label[r][c] != "":
			return pic.label[r][c], false
		case ch == ' ':
		case dr != 0: // up or down: through the note
		case ch == ')' && side == left || ch == '(' && side == right:
			if r, c = pic.matching(r, c, side); r < 0 {
				return "", true
			}
		default:
			return "", true
		}
	}
}

// headTouches is the package a head at r, c pointing to side points at:
// the name it reaches past spaces; "\x00" for other words (outside the
// module); "" for nothing.
func (pic *picture) headTouches(r, c, side int) string {
	dr, dc := step(side)
	for r, c = r+dr, c+dc; pic.at(r, c) == ' '; r, c = r+dr, c+dc {
	}
	switch ch := pic.at(r, c); {
	case ch == 0 || joins[ch] != 0:
		return ""
	case pic.label[r][c] != "":
		return pic.label[r][c]
	}
	return "\x00"
}

// matching finds the parenthesis that matches the one at r, c, reading the
// picture line by line (a note may go on over several lines), backwards
// from a closing one (side left), forwards from an opening one.
func (pic *picture) matching(r, c, side int) (int, int) {
	width := len(pic.rows[0])
	i, di := r*width+c, 1
	if side == left {
		di = -1
	}
	depth := 0
	for ; i >= 0 && i < len(pic.rows)*width; i += di {
		switch pic.rows[i/width][i%width] {
		case '(':
			depth -= di
		case ')':
			depth += di
		}
		if depth == 0 {
			return i / width, i % width
		}
	}
	return -1, -1
}
