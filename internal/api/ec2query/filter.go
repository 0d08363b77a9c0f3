package ec2query

import (
	"sort"
	"strings"

	"nubo/internal/apierr"
)

// Filter is one "Filter.N" parameter: a name and the values any of which may match.
type Filter struct {
	Name   string
	Values []string
}

// ParseFilters reads "Filter.N.Name" and "Filter.N.Value.M".
func ParseFilters(p Params) ([]Filter, error) {
	var out []Filter
	for _, m := range p.Members("Filter") {
		name := m.String("Name")
		if name == "" {
			return nil, apierr.Missing(m.Name("Name"))
		}
		out = append(out, Filter{Name: name, Values: m.Strings("Value")})
	}
	return out, nil
}

// Tags is a resource's tag set, as filters and responses see it.
type Tags = map[string]string

// FilterFunc returns the values a resource has for one filter name.
type FilterFunc[T any] func(T) []string

// Matcher selects resources by EC2 filters: within one filter any value may
// match (OR), across filters all must match (AND). Values may hold the
// wildcards * and ?, escaped with a backslash.
type Matcher[T any] struct {
	tests []func(T) bool
}

// Compile checks every filter name against the resource's known filters
// (plus tag:KEY, tag-key and tag-value when tags is non-nil) and returns a matcher.
func Compile[T any](filters []Filter, known map[string]FilterFunc[T], tags func(T) Tags) (*Matcher[T], error) {
	return CompileWith(filters, func(name string) (FilterFunc[T], bool) {
		f, ok := known[name]
		return f, ok
	}, tags)
}

// CompileWith is Compile with the known filters given by a lookup function.
func CompileWith[T any](filters []Filter, known func(name string) (FilterFunc[T], bool), tags func(T) Tags) (*Matcher[T], error) {
	m := &Matcher[T]{}
	for _, f := range filters {
		get, err := lookupFilter(f.Name, known, tags)
		if err != nil {
			return nil, err
		}
		pats := make([]pattern, len(f.Values))
		for i, v := range f.Values {
			pats[i] = compilePattern(v)
		}
		m.tests = append(m.tests, func(r T) bool {
			for _, have := range get(r) {
				for _, p := range pats {
					if p.match(have) {
						return true
					}
				}
			}
			return false
		})
	}
	return m, nil
}

func lookupFilter[T any](name string, known func(string) (FilterFunc[T], bool), tags func(T) Tags) (FilterFunc[T], error) {
	if get, ok := known(name); ok {
		return get, nil
	}
	if tags != nil {
		if key, ok := strings.CutPrefix(name, "tag:"); ok {
			return func(r T) []string {
				if v, ok := tags(r)[key]; ok {
					return []string{v}
				}
				return nil
			}, nil
		}
		switch name {
		case "tag-key":
			return func(r T) []string { return sortedKeys(tags(r)) }, nil
		case "tag-value":
			return func(r T) []string {
				var vs []string
				for _, v := range tags(r) {
					vs = append(vs, v)
				}
				return vs
			}, nil
		}
	}
	return nil, apierr.New(apierr.InvalidParameterValue, "The filter '%s' is invalid", name)
}

// Match reports whether r passes every filter.
func (m *Matcher[T]) Match(r T) bool {
	for _, t := range m.tests {
		if !t(r) {
			return false
		}
	}
	return true
}

// Apply keeps the resources that pass every filter.
func (m *Matcher[T]) Apply(rs []T) []T {
	if len(m.tests) == 0 {
		return rs
	}
	out := rs[:0:0]
	for _, r := range rs {
		if m.Match(r) {
			out = append(out, r)
		}
	}
	return out
}

func sortedKeys(t Tags) []string {
	ks := make([]string, 0, len(t))
	for k := range t {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// pattern is a filter value: literal runes, '*' (any run) and '?' (any one rune).
type pattern struct {
	lit  bool   // no wildcard: compare directly
	s    string // the literal value when lit
	toks []rune
	wild []bool // wild[i]: toks[i] is a wildcard, not an escaped literal
}

func compilePattern(v string) pattern {
	p := pattern{}
	esc := false
	for _, r := range v {
		switch {
		case esc:
			p.toks, p.wild, esc = append(p.toks, r), append(p.wild, false), false
		case r == '\\':
			esc = true
		case r == '*' || r == '?':
			p.toks, p.wild = append(p.toks, r), append(p.wild, true)
		default:
			p.toks, p.wild = append(p.toks, r), append(p.wild, false)
		}
	}
	if esc { // a trailing backslash is itself
		p.toks, p.wild = append(p.toks, '\\'), append(p.wild, false)
	}
	p.lit = true
	for _, w := range p.wild {
		p.lit = p.lit && !w
	}
	if p.lit {
		p.s = unescape(v)
	}
	return p
}

// unescape drops filter escapes byte by byte, so that a literal value matches
// even bytes that are not valid UTF-8.
func unescape(v string) string {
	if !strings.Contains(v, `\`) {
		return v
	}
	b := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b = append(b, v[i])
	}
	return string(b)
}

// match is iterative wildcard matching with backtracking to the last '*'.
func (p pattern) match(s string) bool {
	if p.lit {
		return s == p.s
	}
	in := []rune(s)
	i, j, star, mark := 0, 0, -1, 0
	for i < len(in) {
		switch {
		case j < len(p.toks) && p.wild[j] && p.toks[j] == '*':
			star, mark = j, i
			j++
		case j < len(p.toks) && (p.wild[j] && p.toks[j] == '?' || !p.wild[j] && p.toks[j] == in[i]):
			i++
			j++
		case star >= 0:
			mark++
			i, j = mark, star+1
		default:
			return false
		}
	}
	for j < len(p.toks) && p.wild[j] && p.toks[j] == '*' {
		j++
	}
	return j == len(p.toks)
}
