package prometheus

import (
	"time"

	"github.com/prometheus/prometheus/promql/parser"
)

// promqlParser parses rendered queries, as config.CheckQuery does.
var promqlParser = parser.NewParser(parser.Options{})

// lookBack returns how far before its evaluation time expr reads through
// ranges: the largest range of a range selector or subquery plus its
// offset, with the ranges and offsets of the subqueries around it added.
// An instant vector selector adds nothing (its staleness look-back is not
// a window), so a query without ranges has a look-back of 0.
func lookBack(n parser.Node) time.Duration {
	switch n := n.(type) {
	case *parser.MatrixSelector:
		return max(0, n.Range+offsetOf(n))
	case *parser.SubqueryExpr:
		return max(0, n.Range+n.OriginalOffset+lookBack(n.Expr))
	}
	var longest time.Duration
	for _, c := range parser.Children(n) {
		longest = max(longest, lookBack(c))
	}
	return longest
}

// offsetOf is the offset a range selector's query gave it.
func offsetOf(m *parser.MatrixSelector) time.Duration {
	if vs, ok := m.VectorSelector.(*parser.VectorSelector); ok {
		return vs.OriginalOffset
	}
	return 0
}

// shortened is what shorten did to a query.
type shortened struct {
	// changed reports whether any range was shortened.
	changed bool
	// shortest is the shortest range shorten wrote, of a range selector
	// or a subquery; 0 when none was shortened.
	shortest time.Duration
	// none reports that a range (after its offset) would have had no time
	// left at all.
	none bool
}

// shorten rewrites expr in place so that nothing reads further back than
// avail before the evaluation time, cutting only the ranges that reach
// past it:
//   - a range selector's range becomes avail minus its offset (and minus
//     the ranges and offsets of the subqueries around it);
//   - a subquery's range gives way first, down to one step (or its own
//     range if shorter), so the ranges inside keep their length as long
//     as possible: max_over_time(rate(x[1m])[10m:30s]) with 5m available
//     becomes max_over_time(rate(x[1m])[4m:30s]);
//   - the ranges inside then share what is left.
//
// Ranges are written in whole seconds, rounded down. Ranges and offsets
// that fit are left as they are.
func shorten(expr parser.Node, avail time.Duration) shortened {
	var s shortened
	shortenIn(expr, avail.Truncate(time.Second), &s)
	return s
}

func shortenIn(n parser.Node, budget time.Duration, s *shortened) {
	switch n := n.(type) {
	case *parser.MatrixSelector:
		off := offsetOf(n)
		if n.Range+off <= budget {
			return
		}
		s.set(&n.Range, (budget - off).Truncate(time.Second))
		n.RangeExpr = nil
		return
	case *parser.SubqueryExpr:
		avail := budget - n.OriginalOffset
		inner := lookBack(n.Expr)
		if n.Range+inner > avail {
			step := max(n.Step, time.Second)
			r := max(avail-inner, min(n.Range, step))
			s.set(&n.Range, min(r, avail).Truncate(time.Second))
			n.RangeExpr = nil
		}
		shortenIn(n.Expr, avail-n.Range, s)
		return
	}
	for _, c := range parser.Children(n) {
		shortenIn(c, budget, s)
	}
}

// set writes a shortened range r to *field.
func (s *shortened) set(field *time.Duration, r time.Duration) {
	if r < time.Second {
		s.none = true
		r = time.Second // keeps the expression printable; it is not run
	}
	*field = r
	if !s.changed || r < s.shortest {
		s.shortest = r
	}
	s.changed = true
}
