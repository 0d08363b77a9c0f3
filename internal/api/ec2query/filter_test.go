package ec2query_test

import (
	"reflect"
	"strings"
	"testing"

	"nubo/internal/api/ec2query"
	"nubo/internal/apierr"
)

// thing is a resource with one single-valued and one multi-valued attribute.
type thing struct {
	Name   string
	Groups []string
	Tags   map[string]string
}

var thingFilters = map[string]ec2query.FilterFunc[thing]{
	"name":  func(r thing) []string { return []string{r.Name} },
	"group": func(r thing) []string { return r.Groups },
}

func thingTags(r thing) ec2query.Tags { return r.Tags }

func names(rs []thing) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.Name)
	}
	return out
}

// matches compiles a single "name" filter with one value and tests s.
func matches(t *testing.T, pattern, s string) bool {
	t.Helper()
	m, err := ec2query.Compile([]ec2query.Filter{{Name: "name", Values: []string{pattern}}}, thingFilters, nil)
	wantNoError(t, err)
	return m.Match(thing{Name: s})
}

func TestFilterWildcards(t *testing.T) {
	tests := []struct {
		pattern, value string
		want           bool
	}{
		// Literal values match exactly and case-sensitively.
		{"web", "web", true},
		{"web", "Web", false},
		{"web", "web1", false},
		{"web", "", false},
		{"", "", true},
		{"", "x", false},
		// '*' is any run, including the empty one.
		{"*", "", true},
		{"*", "anything at all", true},
		{"web*", "web", true},
		{"web*", "web-1", true},
		{"web*", "xweb", false},
		{"*web", "my-web", true},
		{"*web", "web-1", false},
		{"*web*", "a-web-b", true},
		{"a*b*c", "abc", true},
		{"a*b*c", "a-b-b-c", true},
		{"a*b*c", "a-b-c-d", false},
		{"a*a*a", "aaa", true},
		{"a*a*a", "aa", false},
		{"**", "x", true},
		{"*x*x*", "xx", true},
		{"*x*x*", "x", false},
		{"*ab", "aab", true},
		{"*aab", "aaab", true},
		// '?' is exactly one character.
		{"?", "a", true},
		{"?", "", false},
		{"?", "ab", false},
		{"web-?", "web-1", true},
		{"web-?", "web-10", false},
		{"web-??", "web-10", true},
		{"?*", "", false},
		{"?*", "a", true},
		{"*?", "ab", true},
		// Backslash escapes make wildcards literal.
		{`a\*b`, "a*b", true},
		{`a\*b`, "axb", false},
		{`a\*b`, "ab", false},
		{`a\?b`, "a?b", true},
		{`a\?b`, "axb", false},
		{`\*`, "*", true},
		{`\*`, "x", false},
		{`\**`, "*xyz", true},
		{`\**`, "xyz", false},
		{`*\?`, "why?", true},
		{`*\?`, "why", false},
		{`a\\b`, `a\b`, true},
		{`a\\*`, `a\bc`, true},
		{`a\\*`, `ab`, false},
		{`\a`, "a", true}, // escaping an ordinary character is the character
		// A trailing backslash is itself.
		{`a\`, `a\`, true},
		{`a\`, `a`, false},
		{`*\`, `path\`, true},
		{`\`, `\`, true},
		// Unicode: '?' is one character, not one byte.
		{"caf?", "café", true},
		{"caf??", "café", false},
		{"?", "é", true},
		{"?", "日", true},
		{"??", "日本", true},
		{"*本", "日本", true},
		{"日*", "日本語", true},
		{"café", "café", true},
		{"cafe", "café", false},
		{`\日`, "日", true},
		{"🙂?", "🙂x", true},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+"~"+tt.value, func(t *testing.T) {
			if got := matches(t, tt.pattern, tt.value); got != tt.want {
				t.Errorf("pattern %q vs %q: got %v, want %v", tt.pattern, tt.value, got, tt.want)
			}
		})
	}
}

// Long inputs with many stars must not take exponential time.
func TestFilterWildcardNoBlowup(t *testing.T) {
	s := strings.Repeat("a", 10000)
	if matches(t, strings.Repeat("*a", 50)+"b", s) {
		t.Error("matched a string without b")
	}
	if !matches(t, strings.Repeat("*a", 50)+"*", s) {
		t.Error("did not match")
	}
}

func TestFilterCombination(t *testing.T) {
	all := []thing{
		{Name: "web-1", Groups: []string{"frontend", "public"}, Tags: map[string]string{"Env": "prod", "Team": "web"}},
		{Name: "web-2", Groups: []string{"frontend"}, Tags: map[string]string{"Env": "dev"}},
		{Name: "db-1", Groups: []string{"backend"}, Tags: map[string]string{"Env": "prod", "Backup": ""}},
		{Name: "batch", Tags: nil},
	}
	tests := []struct {
		name    string
		filters []ec2query.Filter
		want    []string
	}{
		{"no filters", nil, []string{"web-1", "web-2", "db-1", "batch"}},
		{"one value", []ec2query.Filter{{"name", []string{"web-1"}}}, []string{"web-1"}},
		{"OR within a filter", []ec2query.Filter{{"name", []string{"web-2", "db-1", "nope"}}}, []string{"web-2", "db-1"}},
		{"OR with wildcard", []ec2query.Filter{{"name", []string{"db-*", "batch"}}}, []string{"db-1", "batch"}},
		{"AND across filters", []ec2query.Filter{{"name", []string{"web-*"}}, {"tag:Env", []string{"prod"}}}, []string{"web-1"}},
		{"AND empty result", []ec2query.Filter{{"name", []string{"db-1"}}, {"group", []string{"frontend"}}}, []string{}},
		{"same filter twice is AND", []ec2query.Filter{{"name", []string{"web-*"}}, {"name", []string{"*-2"}}}, []string{"web-2"}},
		{"multi-valued attribute: any value", []ec2query.Filter{{"group", []string{"public"}}}, []string{"web-1"}},
		{"multi-valued attribute with wildcard", []ec2query.Filter{{"group", []string{"*end"}}}, []string{"web-1", "web-2", "db-1"}},
		{"no attribute values never match", []ec2query.Filter{{"group", []string{"*"}}}, []string{"web-1", "web-2", "db-1"}},
		{"tag:KEY", []ec2query.Filter{{"tag:Env", []string{"prod"}}}, []string{"web-1", "db-1"}},
		{"tag:KEY OR", []ec2query.Filter{{"tag:Env", []string{"dev", "staging"}}}, []string{"web-2"}},
		{"tag:KEY wildcard", []ec2query.Filter{{"tag:Env", []string{"*"}}}, []string{"web-1", "web-2", "db-1"}},
		{"tag:KEY empty value", []ec2query.Filter{{"tag:Backup", []string{""}}}, []string{"db-1"}},
		{"tag:KEY key is case sensitive", []ec2query.Filter{{"tag:env", []string{"*"}}}, []string{}},
		{"tag:KEY absent", []ec2query.Filter{{"tag:Owner", []string{"*"}}}, []string{}},
		{"tag:KEY with colon in key", []ec2query.Filter{{"tag:aws:cloudformation:stack-name", []string{"*"}}}, []string{}},
		{"tag-key", []ec2query.Filter{{"tag-key", []string{"Team"}}}, []string{"web-1"}},
		{"tag-key wildcard", []ec2query.Filter{{"tag-key", []string{"B*"}}}, []string{"db-1"}},
		{"tag-key OR", []ec2query.Filter{{"tag-key", []string{"Team", "Backup"}}}, []string{"web-1", "db-1"}},
		{"tag-value", []ec2query.Filter{{"tag-value", []string{"web"}}}, []string{"web-1"}},
		{"tag-value any key", []ec2query.Filter{{"tag-value", []string{"prod"}}}, []string{"web-1", "db-1"}},
		{"tag-value wildcard", []ec2query.Filter{{"tag-value", []string{"d*"}}}, []string{"web-2"}},
		{"tag-key AND tag-value are independent", []ec2query.Filter{{"tag-key", []string{"Team"}}, {"tag-value", []string{"prod"}}}, []string{"web-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ec2query.Compile(tt.filters, thingFilters, thingTags)
			wantNoError(t, err)
			in := append([]thing(nil), all...)
			got := m.Apply(in)
			if !reflect.DeepEqual(names(got), tt.want) {
				t.Errorf("got %q, want %q", names(got), tt.want)
			}
			if !reflect.DeepEqual(names(in), names(all)) {
				t.Errorf("Apply modified its input: %q", names(in))
			}
			for _, r := range all {
				want := false
				for _, n := range tt.want {
					want = want || n == r.Name
				}
				if m.Match(r) != want {
					t.Errorf("Match(%s) = %v, want %v", r.Name, !want, want)
				}
			}
		})
	}
}

func TestFilterUnknownName(t *testing.T) {
	tests := []struct {
		name string
		tags func(thing) ec2query.Tags
	}{
		{"bogus", thingTags},
		{"Name", thingTags}, // filter names are case sensitive
		{"tag:Name", nil},   // tag filters only for taggable resources
		{"tag-key", nil},
		{"tag-value", nil},
		{"tag", thingTags},
		{"tag-keys", thingTags},
		{"", thingTags},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			filters := []ec2query.Filter{{"name", []string{"x"}}, {tt.name, []string{"v"}}}
			m, err := ec2query.Compile(filters, thingFilters, tt.tags)
			e := wantCode(t, err, apierr.InvalidParameterValue)
			if m != nil {
				t.Error("Compile returned a matcher with an error")
			}
			if !strings.Contains(e.Message, "'"+tt.name+"'") {
				t.Errorf("message %q does not name the filter %q", e.Message, tt.name)
			}
		})
	}
}

func TestParseFilters(t *testing.T) {
	p := mustParse(t, strings.Join([]string{
		"Action=DescribeKeyPairs",
		"Filter.2.Name=tag:Env", "Filter.2.Value.1=prod",
		"Filter.1.Name=key-name", "Filter.1.Value.2=b*", "Filter.1.Value.1=a*", "Filter.1.Value.10=j",
		"Filter.3.Name=tag-key",
	}, "&"))
	got, err := ec2query.ParseFilters(p)
	wantNoError(t, err)
	want := []ec2query.Filter{
		{Name: "key-name", Values: []string{"a*", "b*", "j"}},
		{Name: "tag:Env", Values: []string{"prod"}},
		{Name: "tag-key", Values: []string{}},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d filters, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].Name != want[i].Name || len(got[i].Values) != len(want[i].Values) ||
			(len(want[i].Values) > 0 && !reflect.DeepEqual(got[i].Values, want[i].Values)) {
			t.Errorf("filter %d = %+v, want %+v", i, got[i], want[i])
		}
	}

	none, err := ec2query.ParseFilters(mustParse(t, "Action=DescribeKeyPairs"))
	wantNoError(t, err)
	if len(none) != 0 {
		t.Errorf("no Filter parameters gave %d filters", len(none))
	}
}

func TestParseFiltersMissingName(t *testing.T) {
	tests := []struct {
		raw, want string
	}{
		{"Filter.1.Value.1=a", "Filter.1.Name"},
		{"Filter.1.Name=&Filter.1.Value.1=a", "Filter.1.Name"},
		{"Filter.1.Name=key-name&Filter.1.Value.1=a&Filter.3.Value.1=b", "Filter.3.Name"},
		{"Filter.1.Name=key-name&Filter.12.Value.1=b", "Filter.12.Name"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			fs, err := ec2query.ParseFilters(mustParse(t, tt.raw))
			e := wantCode(t, err, apierr.MissingParameter)
			if fs != nil {
				t.Error("filters returned along with an error")
			}
			if !strings.Contains(e.Message, tt.want) {
				t.Errorf("message %q does not name %s", e.Message, tt.want)
			}
		})
	}
}

// End to end: wire parameters → ParseFilters → Compile → Apply.
func TestFiltersFromWire(t *testing.T) {
	all := []thing{{Name: "a*b"}, {Name: "axb"}, {Name: "café"}, {Name: "a b"}}
	tests := []struct {
		raw  string
		want []string
	}{
		{"Filter.1.Name=name&Filter.1.Value.1=a%5C*b", []string{"a*b"}},
		{"Filter.1.Name=name&Filter.1.Value.1=a*b", []string{"a*b", "axb", "a b"}},
		{"Filter.1.Name=name&Filter.1.Value.1=a?b", []string{"a*b", "axb", "a b"}},
		{"Filter.1.Name=name&Filter.1.Value.1=caf%3F", []string{"café"}},
		{"Filter.1.Name=name&Filter.1.Value.1=a+b", []string{"a b"}},
		{"Filter.1.Name=name&Filter.1.Value.1=a%2Bb", []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			fs, err := ec2query.ParseFilters(mustParse(t, tt.raw))
			wantNoError(t, err)
			m, err := ec2query.Compile(fs, thingFilters, thingTags)
			wantNoError(t, err)
			if got := names(m.Apply(all)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// A filter value without wildcards matches a byte-identical resource value,
// whatever the bytes; and adding a trailing '*' never loses that match. The
// query decoder passes invalid UTF-8 through (%FF), so values can hold it.
func TestFilterLiteralMatchesItselfByteForByte(t *testing.T) {
	for _, v := range []string{"\xff", "key-\xfe\xff", "caf\xc3", `a\` + "\xff"} {
		literal := escapeWildcards(v)
		if !matches(t, literal+"*", v) {
			t.Errorf("%q does not match %q", literal+"*", v)
		}
		if !matches(t, literal, v) {
			t.Errorf("BUG: literal filter value %q does not match the identical value %q "+
				"(compilePattern rebuilds literals from runes, turning invalid bytes into U+FFFD)", literal, v)
		}
	}
}
