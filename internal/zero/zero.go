// Package zero clears the fields of objects that are reused from request
// to request (a pooled exchange, the decision in it) without writing the
// ones that are zero already.
//
// While the collector marks, every pointer stored into a heap object goes
// through the write barrier, which records it, nil or not; a whole-struct
// clear (*d = Decision{}) stores each of its pointer slots, set or not.
// On the handler's path that was about 8 % of a decision's time in
// BenchmarkDecision (docs/performance.md). Clearing field by field, and
// only what is set, stores only what a request wrote.
package zero

// Clear sets *p to the zero T, unless it is already. For an interface T
// the comparison is with nil, which never panics.
func Clear[T comparable](p *T) {
	var z T
	if *p != z {
		*p = z
	}
}
