package ec2query

import (
	"net/url"
	"sort"
	"strconv"
	"strings"

	"nubo/internal/apierr"
)

// Params is the flat parameter map of one EC2 Query request. Structured
// parameters are spelled with dots and 1-based indexes: "KeyName.1",
// "Filter.2.Name", "Filter.2.Value.1", "TagSpecification.1.Tag.3.Key".
type Params struct {
	prefix string // "" at the top level, "Filter.2." for a member
	values url.Values
}

// ParseParams decodes an application/x-www-form-urlencoded body or query string.
func ParseParams(raw string) (Params, error) {
	v, err := url.ParseQuery(raw)
	if err != nil {
		return Params{}, apierr.New(apierr.MalformedQueryString, "The query string is malformed: %v", err)
	}
	return Params{values: v}, nil
}

// NewParams wraps already-decoded values (tests, GET and POST merged).
func NewParams(v url.Values) Params { return Params{values: v} }

// Name is the full wire name of a parameter of this (sub)structure, as used in errors.
func (p Params) Name(name string) string { return p.prefix + name }

// Has reports whether the parameter was sent, even with an empty value.
func (p Params) Has(name string) bool {
	_, ok := p.values[p.prefix+name]
	return ok
}

// String returns the parameter's value, "" when absent.
func (p Params) String(name string) string { return p.values.Get(p.prefix + name) }

// Required returns the parameter's value or MissingParameter when it is absent or empty.
func (p Params) Required(name string) (string, error) {
	v := p.String(name)
	if v == "" {
		return "", apierr.Missing(p.Name(name))
	}
	return v, nil
}

// Bool parses a boolean parameter; absent means false.
func (p Params) Bool(name string) (bool, error) {
	v, ok := p.values[p.prefix+name]
	if !ok || len(v) == 0 {
		return false, nil
	}
	switch strings.ToLower(v[0]) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, apierr.InvalidValue(p.Name(name), v[0], "Expected a boolean (true or false).")
}

// OptBool parses a boolean parameter that may be absent (nil).
func (p Params) OptBool(name string) (*bool, error) {
	if !p.Has(name) {
		return nil, nil
	}
	b, err := p.Bool(name)
	return &b, err
}

// Int parses an integer parameter; ok is false when it is absent.
func (p Params) Int(name string) (n int, ok bool, err error) {
	v, present := p.values[p.prefix+name]
	if !present || len(v) == 0 {
		return 0, false, nil
	}
	n, err = strconv.Atoi(strings.TrimSpace(v[0]))
	if err != nil {
		return 0, true, apierr.InvalidValue(p.Name(name), v[0], "Expected an integer.")
	}
	return n, true, nil
}

// Strings returns the list parameter "name.1", "name.2", … ordered by index.
func (p Params) Strings(name string) []string {
	idx := p.indexes(name)
	out := make([]string, 0, len(idx))
	for _, i := range idx {
		out = append(out, p.values.Get(p.prefix+name+"."+strconv.Itoa(i)))
	}
	return out
}

// Members returns the structures of list parameter "name": one Params per
// index N, holding the parameters spelled "name.N.*", ordered by index.
func (p Params) Members(name string) []Params {
	idx := p.indexes(name)
	out := make([]Params, 0, len(idx))
	for _, i := range idx {
		out = append(out, Params{prefix: p.prefix + name + "." + strconv.Itoa(i) + ".", values: p.values})
	}
	return out
}

// Member returns the single structure "name.*" (for non-list structure parameters).
func (p Params) Member(name string) Params {
	return Params{prefix: p.prefix + name + ".", values: p.values}
}

// indexes lists the distinct positive indexes N of keys "name.N" and "name.N.*".
func (p Params) indexes(name string) []int {
	lead := p.prefix + name + "."
	seen := map[int]bool{}
	for k := range p.values {
		rest, ok := strings.CutPrefix(k, lead)
		if !ok {
			continue
		}
		num, _, _ := strings.Cut(rest, ".")
		i, err := strconv.Atoi(num)
		if err != nil || i < 1 || num[0] == '0' || num[0] == '+' {
			continue
		}
		seen[i] = true
	}
	out := make([]int, 0, len(seen))
	for i := range seen {
		out = append(out, i)
	}
	sort.Ints(out)
	return out
}
