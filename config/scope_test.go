package config

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

func TestCheckQuery(t *testing.T) {
	ns := &labels.Matcher{Type: labels.MatchEqual, Name: "namespace", Value: "team-a"}
	pod := &labels.Matcher{Type: labels.MatchRegexp, Name: "pod", Value: "web-1|web-2"}
	scope := []*labels.Matcher{ns, pod}
	tests := []struct {
		name     string
		query    string
		required []*labels.Matcher
		maxRange time.Duration
		// want describes each problem, in query order: "selector <sel> missing <m>,..." or "window <range>".
		want []string
	}{
		{name: "every selector scoped", required: scope, maxRange: time.Hour,
			query: `sum(rate(a{namespace="team-a",pod=~"web-1|web-2"}[5m])) / sum(b{pod=~"web-1|web-2",namespace="team-a",job="x"}) or vector(0)`},
		{name: "unscoped second operand", required: scope,
			query: `a{namespace="team-a",pod=~"web-1|web-2"} / b`,
			want:  []string{`selector b missing namespace="team-a",pod=~"web-1|web-2"`}},
		{name: "inside a range selector", required: []*labels.Matcher{ns},
			query: `rate(a{namespace="team-b"}[5m])`,
			want:  []string{`selector a{namespace="team-b"} missing namespace="team-a"`}},
		{name: "inside a subquery", required: []*labels.Matcher{ns},
			query: `max_over_time(sum(a)[10m:1m])`,
			want:  []string{`selector a missing namespace="team-a"`}},
		{name: "type must be equal too", required: []*labels.Matcher{ns},
			query: `a{namespace=~"team-a"}`,
			want:  []string{`selector a{namespace=~"team-a"} missing namespace="team-a"`}},
		{name: "widened regexp is not the scope", required: []*labels.Matcher{pod},
			query: `a{pod=~"web-1|web-2|.*"}`,
			want:  []string{`selector a{pod=~"web-1|web-2|.*"} missing pod=~"web-1|web-2"`}},
		{name: "negated is not the scope", required: []*labels.Matcher{ns},
			query: `a{namespace!="team-a"}`,
			want:  []string{`selector a{namespace!="team-a"} missing namespace="team-a"`}},
		{name: "__name__ selector", required: []*labels.Matcher{ns},
			query: `{__name__=~"a|b"}`,
			want:  []string{`selector {__name__=~"a|b"} missing namespace="team-a"`}},
		{name: "no requirement", query: `sum(a) / sum(b)`},
		{name: "range at the limit", maxRange: 5 * time.Minute, query: `rate(a[5m])`},
		{name: "range over the limit", maxRange: 5 * time.Minute, query: `rate(a[5m1s]) + rate(b[2m])`,
			want: []string{"window 5m1s"}},
		{name: "subquery over the limit", maxRange: time.Hour, query: `max_over_time(rate(a[5m])[2h:1m])`,
			want: []string{"window 2h"}},
		{name: "no limit", query: `max_over_time(rate(a[500h])[900h:1m])`},
		{name: "both kinds", required: []*labels.Matcher{ns}, maxRange: time.Minute, query: `rate(a[2m])`,
			want: []string{"window 2m", `selector a missing namespace="team-a"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			problems, err := CheckQuery(tc.query, tc.required, tc.maxRange)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range problems {
				if p.OutOfScope() {
					var missing []string
					for _, m := range p.Missing {
						missing = append(missing, m.String())
					}
					got = append(got, "selector "+p.Selector.String()+" missing "+strings.Join(missing, ","))
				} else {
					got = append(got, "window "+p.Range.String())
				}
			}
			want := slices.Clone(tc.want)
			for i, w := range want {
				if d, ok := strings.CutPrefix(w, "window "); ok {
					want[i] = "window " + mustDuration(t, d).String()
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("problems\n got %q\nwant %q", got, want)
			}
		})
	}
	if _, err := CheckQuery(`sum(`, nil, 0); err == nil {
		t.Error("CheckQuery of invalid PromQL returned no error")
	}
}

func mustDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
