package config

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// NamespacePlaceholder in a Kafka groupPattern or allowedTopics glob stands
// for the namespace of the request.
const NamespacePlaceholder = "{namespace}"

// MayReadGroup reports whether a request made in namespace may read the
// consumer group through the kafka entry m of c. For a namespaced entry
// (the default) the namespace must own the group: the group matches m's
// groupPattern with {namespace} replaced by namespace, or
// kafka.groupOwners gives it to namespace. A namespaced: false entry reads
// the groups its groupPattern matches (default "*": any group); which
// namespaces may call it at all is AllowsCaller's decision.
//
// Globs are those of path.Match: * matches any run of characters but "/".
func (c *Catalog) MayReadGroup(m *Metric, namespace, group string) bool {
	if m.Kafka == nil {
		return false
	}
	if globMatch(strings.ReplaceAll(m.Kafka.GroupPattern, NamespacePlaceholder, namespace), group) {
		return true
	}
	if !m.IsNamespaced() {
		return false
	}
	for _, o := range c.Kafka.GroupOwners {
		if o.Namespace != namespace {
			continue
		}
		if slices.ContainsFunc(o.Groups, func(g string) bool { return globMatch(g, group) }) {
			return true
		}
	}
	return false
}

// AllowedTopicsFor returns k's allowedTopics for a request made in
// namespace: globs (path.Match syntax) with {namespace} replaced. Nil when
// the entry allows no topics beyond those a group has committed offsets for.
func (k *KafkaMetric) AllowedTopicsFor(namespace string) []string {
	if k == nil || len(k.AllowedTopics) == 0 {
		return nil
	}
	out := make([]string, len(k.AllowedTopics))
	for i, t := range k.AllowedTopics {
		out[i] = strings.ReplaceAll(t, NamespacePlaceholder, namespace)
	}
	return out
}

// globMatch is path.Match for a glob validation has accepted.
func globMatch(glob, name string) bool {
	ok, err := path.Match(glob, name)
	return ok && err == nil
}

// validateGroupOwners checks kafka.groupOwners.
func (k *KafkaSettings) validateGroupOwners(p *problems) {
	for i, o := range k.GroupOwners {
		f := fmt.Sprintf("kafka.groupOwners[%d]", i)
		switch {
		case o.Namespace == "":
			p.add(f+".namespace", "missing; name the namespace that owns the groups, e.g. namespace: demo")
		case len(validation.IsDNS1123Label(o.Namespace)) > 0:
			p.add(f+".namespace", "%q is not a namespace name; use up to 63 lowercase letters, digits and '-', starting and ending with a letter or digit", o.Namespace)
		}
		if len(o.Groups) == 0 {
			p.add(f+".groups", "missing; list the consumer groups (names or globs) the namespace owns, e.g. groups: [billing, \"legacy-*\"]")
		}
		for j, g := range o.Groups {
			gf := fmt.Sprintf("%s.groups[%d]", f, j)
			switch {
			case g == "":
				p.add(gf, "empty; write a consumer group name or glob")
			case strings.Contains(g, NamespacePlaceholder):
				p.add(gf, "%q uses {namespace}, which groupOwners does not replace; write the groups of namespace %q as they are named, or use the entries' groupPattern", g, o.Namespace)
			default:
				if _, err := path.Match(g, ""); err != nil {
					p.add(gf, "%q is not a valid glob: %w; use *, ? and [...], e.g. \"legacy-*\"", g, err)
				}
			}
		}
	}
}

// validateKafkaScope checks the fields that decide what a kafka entry may
// read: groupPattern and allowedTopics.
func (m *Metric) validateKafkaScope(p *problems) {
	k := m.Kafka
	if _, err := path.Match(strings.ReplaceAll(k.GroupPattern, NamespacePlaceholder, "ns"), ""); err != nil {
		p.add("kafka.groupPattern", "%q is not a valid glob: %w; use *, ?, [...] and {namespace}, e.g. \"{namespace}.*\"", k.GroupPattern, err)
	} else if m.IsNamespaced() {
		if msg := namespaceGlobProblem(k.GroupPattern, "groups"); msg != "" {
			p.add("kafka.groupPattern", "%s", msg)
		}
	}
	for i, t := range k.AllowedTopics {
		f := fmt.Sprintf("kafka.allowedTopics[%d]", i)
		if t == "" {
			p.add(f, "empty; write a topic name or glob, e.g. \"{namespace}.*\"")
			continue
		}
		if _, err := path.Match(strings.ReplaceAll(t, NamespacePlaceholder, "ns"), ""); err != nil {
			p.add(f, "%q is not a valid glob: %w; use *, ?, [...] and {namespace}, e.g. \"{namespace}.*\"", t, err)
			continue
		}
		if m.IsNamespaced() && strings.Contains(t, NamespacePlaceholder) {
			if msg := namespaceGlobProblem(t, "topics"); msg != "" {
				p.add(f, "%s", msg)
			}
		}
	}
}

// namespaceGlobProblem checks a valid glob that gives each namespace what
// matches it with {namespace} replaced by the namespace's name (what is
// "groups" or "topics"). No name may match it for two namespaces: the glob
// holds {namespace} once, only literal text comes before it, and right
// after it comes the end or a literal character namespace names cannot
// contain (anything but a-z, 0-9 and '-'). It returns the problem, or "".
func namespaceGlobProblem(glob, what string) string {
	switch n := strings.Count(glob, NamespacePlaceholder); {
	case n == 0 && what == "groups":
		return fmt.Sprintf("%q does not contain {namespace}, so every namespace would own the same groups; "+
			"write a pattern with {namespace}, e.g. \"{namespace}.*\", list the groups under kafka.groupOwners, "+
			"or set namespaced: false with callerNamespaces", glob)
	case n == 0:
		return ""
	case n > 1:
		return fmt.Sprintf("%q contains {namespace} %d times; use it once, e.g. \"{namespace}.*\"", glob, n)
	}
	i := strings.Index(glob, NamespacePlaceholder)
	before, after := glob[:i], glob[i+len(NamespacePlaceholder):]
	if strings.ContainsAny(before, `*?[\`) {
		if spoof := spoofExample(glob, "a", "team-a", what); spoof != "" {
			return fmt.Sprintf("%q has a wildcard before {namespace}, so it lets namespace \"a\" read the %s of namespace \"team-a\" (%s); "+
				"write only literal text before {namespace}, e.g. \"{namespace}.*\"", glob, what, spoof)
		}
		return fmt.Sprintf("%q has a wildcard before {namespace}, so it lets a namespace read the %s of namespaces whose names end with its own; "+
			"write only literal text before {namespace}, e.g. \"{namespace}.*\"", glob, what)
	}
	if after == "" || !isNamespaceChar(after[0]) && !strings.ContainsRune(`*?[\`, rune(after[0])) {
		return ""
	}
	example := before + NamespacePlaceholder + ".*"
	if isNamespaceChar(after[0]) && !strings.ContainsAny(after, `*?[\`) {
		example = before + NamespacePlaceholder + "." + after[1:]
	}
	fix := fmt.Sprintf("follow {namespace} with a character namespace names cannot contain, e.g. %q", example)
	if what == "groups" {
		fix += ", or list the groups under kafka.groupOwners"
	}
	other := "team-a"
	if isNamespaceChar(after[0]) {
		other = "team" + after[:1] + "a"
	}
	if spoof := spoofExample(glob, "team", other, what); spoof != "" {
		return fmt.Sprintf("%q lets namespace \"team\" read the %s of namespace %q (%s); %s", glob, what, other, spoof, fix)
	}
	return fmt.Sprintf("%q follows {namespace} with %q, which namespace names may contain; %s", glob, after[:1], fix)
}

func isNamespaceChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-'
}

// spoofExample returns `"<name>" matches both` for a name that glob matches
// both for namespace ns and for namespace other, or "" if the simple
// candidate it builds does not.
func spoofExample(glob, ns, other, what string) string {
	i := strings.Index(glob, NamespacePlaceholder)
	filler := "billing"
	if what == "topics" {
		filler = "orders"
	}
	after := glob[i+len(NamespacePlaceholder):]
	if strings.HasPrefix(after, "*") {
		filler = "-" + filler
	}
	name := fillGlob(glob[:i], "") + other + fillGlob(after, filler)
	for _, n := range []string{ns, other} {
		if !globMatch(strings.ReplaceAll(glob, NamespacePlaceholder, n), name) {
			return ""
		}
	}
	return fmt.Sprintf("%q matches both", name)
}

// fillGlob returns a name glob matches: * becomes star, ? and a character
// class one character that matches.
func fillGlob(glob, star string) string {
	var b strings.Builder
	for i := 0; i < len(glob); i++ {
		switch c := glob[i]; c {
		case '*':
			b.WriteString(star)
		case '?':
			b.WriteByte('x')
		case '\\':
			if i+1 < len(glob) {
				i++
				b.WriteByte(glob[i])
			}
		case '[':
			end := strings.IndexByte(glob[i+1:], ']')
			if end < 0 {
				return b.String()
			}
			class := glob[i : i+1+end+1]
			for _, cand := range "abcxyz0123456789.-_ABC" {
				if globMatch(class, string(cand)) {
					b.WriteRune(cand)
					break
				}
			}
			i += end + 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
