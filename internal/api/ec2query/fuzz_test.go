package ec2query_test

import (
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"nubo/internal/api/ec2query"
	"nubo/internal/apierr"
)

var fuzzSeeds = []string{
	"Action=DescribeKeyPairs&Version=2016-11-15&Filter.1.Name=key-name&Filter.1.Value.1=a*",
	"Action=DescribeKeyPairs&Version=2016-11-15&KeyName.1=a&KeyName.2=b&KeyName.10=j&DryRun=true",
	"Action=CreateKeyPair&Version=2016-11-15&KeyName=k&KeyType=ed25519&TagSpecification.1.ResourceType=key-pair&TagSpecification.1.Tag.1.Key=Name&TagSpecification.1.Tag.1.Value=web&TagSpecification.1.Tag.2.Key=Env&TagSpecification.1.Tag.2.Value=prod",
	"Action=DescribeTags&Version=2016-11-15&MaxResults=5&NextToken=a2V5LTAwMDE&Filter.1.Name=resource-type&Filter.1.Value.1=key-pair&Filter.1.Value.2=instance",
	"Action=DescribeTags&Version=2016-11-15&MaxResults=4",
	"Action=DescribeTags&Version=2016-11-15&MaxResults=99999999999999999999&NextToken=!!",
	"Action=RunInstances&Version=2016-11-15&ImageId=ami-1&MinCount=1&MaxCount=1&BlockDeviceMapping.1.DeviceName=%2Fdev%2Fsda1&BlockDeviceMapping.1.Ebs.VolumeSize=8&Placement.AvailabilityZone=us-east-1a&DryRun=TRUE",
	"Action=CreateTags&Version=2016-11-15&ResourceId.1=key-0123&Tag.1.Key=a%20b&Tag.1.Value=%E6%97%A5%E6%9C%AC",
	"Action=DescribeRegions&Version=2016-11-15&RegionName.1=us-east-1&AllRegions=false",
	"Filter.1.Name=tag:Env&Filter.1.Value.1=prod&Filter.2.Name=tag-key&Filter.2.Value.1=*&Filter.3.Name=tag-value&Filter.3.Value.1=%5C*%3F%5C",
	"Filter.0.Name=x&Filter.01.Name=y&Filter.x.Name=z&Filter.-1.Name=n&Filter.+1.Name=p&Filter..Name=e&Filter.=f",
	"Filter.1.Value.1=orphan",
	"Filter.9223372036854775807.Name=max&Filter.9223372036854775808.Name=over",
	"Filter.1.Name=key-name&Filter.1.Name=dup&Filter.1.Value.1=*?*?\\",
	"Filter.1=bare&Filter.1.Name=key-name&Filter.1.Value=novalue&Filter.1.Value.1.Extra=deep",
	"a.1.b.2.c.3.d.4.e.5.f.6=deep&a.1.b.2.c.3.d.4.e.5.f.7=deeper",
	"%zz=1",
	"Action=A;Version=B",
	"=&&&=&.=.&..=..&1=1",
	"Filter.1.Name=key-name&Filter.1.Value.1=%FF%FE*",
	"",
}

// knownFuzz are the filter names the fuzzed matcher accepts.
var knownFuzz = map[string]ec2query.FilterFunc[thing]{
	"key-name": func(r thing) []string { return []string{r.Name} },
	"name":     func(r thing) []string { return []string{r.Name} },
	"group":    func(r thing) []string { return r.Groups },
}

var fuzzThings = []thing{
	{Name: "alpha", Groups: []string{"a", "b"}, Tags: map[string]string{"Env": "prod", "Name": "web"}},
	{Name: "a*b?", Tags: map[string]string{"k": ""}},
	{Name: "日本", Groups: []string{`\`}},
	{Name: ""},
}

// escapeWildcards makes s a filter value matching exactly s.
func escapeWildcards(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`)
	return r.Replace(s)
}

func FuzzParseParams(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := ec2query.ParseParams(raw)
		if err != nil {
			if e, ok := apierr.As(err); !ok || e.Code != apierr.MalformedQueryString {
				t.Fatalf("ParseParams error %v, want MalformedQueryString", err)
			}
			return
		}
		values, err := url.ParseQuery(raw)
		if err != nil {
			t.Fatalf("ParseParams accepted what url.ParseQuery rejects: %v", err)
		}
		keys := make([]string, 0, len(values))
		for k := range values {
			keys = append(keys, k)
		}
		budget := 400
		exercise(t, p, "", keys, 0, &budget)
	})
}

// exercise calls every accessor of p for the names the keys (and a few usual
// ones) spell below p's prefix, then recurses into members.
func exercise(t *testing.T, p ec2query.Params, prefix string, keys []string, depth int, budget *int) {
	if *budget <= 0 || depth > 8 {
		return
	}
	*budget--
	// names maps each name to whether some key continues below it ("name.…").
	names := map[string]bool{"Filter": false, "Value": false, "Name": false, "Tag": false, "MaxResults": false, "DryRun": false, "": false}
	for _, k := range keys {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			seg, _, deeper := strings.Cut(rest, ".")
			names[seg] = names[seg] || deeper
		}
	}
	for name, deeper := range names {
		if *budget <= 0 {
			return
		}
		full := p.Name(name)
		if full != prefix+name {
			t.Fatalf("Name(%q) = %q under prefix %q", name, full, prefix)
		}
		has, s := p.Has(name), p.String(name)
		if !has && s != "" {
			t.Fatalf("String(%q) = %q for an absent parameter", full, s)
		}
		if v, err := p.Required(name); (err == nil) != (s != "") || (err == nil && v != s) {
			t.Fatalf("Required(%q) = %q, %v with String %q", full, v, err, s)
		} else if err != nil {
			wantFuzzCode(t, err, apierr.MissingParameter, full)
		}
		if _, err := p.Bool(name); err != nil {
			wantFuzzCode(t, err, apierr.InvalidParameterValue, full)
		}
		if b, err := p.OptBool(name); err == nil && (b == nil) == has {
			t.Fatalf("OptBool(%q) nil=%v but Has=%v", full, b == nil, has)
		}
		n, ok, err := p.Int(name)
		if ok != has {
			t.Fatalf("Int(%q) ok=%v but Has=%v", full, ok, has)
		}
		if err != nil {
			wantFuzzCode(t, err, apierr.InvalidParameterValue, full)
		} else if ok && !decimalRE.MatchString(strings.TrimSpace(s)) {
			t.Fatalf("Int(%q) = %d from non-integer %q", full, n, s)
		}

		strs := p.Strings(name)
		members := p.Members(name)
		if len(strs) != len(members) {
			t.Fatalf("%q: %d strings but %d members", full, len(strs), len(members))
		}
		last := 0
		for i, m := range members {
			mp := m.Name("")
			idx, ok := strings.CutPrefix(mp, full+".")
			if !ok || !strings.HasSuffix(idx, ".") {
				t.Fatalf("member prefix %q is not under %q", mp, full)
			}
			idx = strings.TrimSuffix(idx, ".")
			k, err := strconv.Atoi(idx)
			if err != nil || k < 1 || idx[0] == '0' || strconv.Itoa(k) != idx {
				t.Fatalf("member index %q of %q is not a canonical positive integer", idx, full)
			}
			if k <= last {
				t.Fatalf("members of %q out of order: %d after %d", full, k, last)
			}
			last = k
			if want := p.String(name + "." + idx); strs[i] != want {
				t.Fatalf("Strings(%q)[%d] = %q, want %q", full, i, strs[i], want)
			}
			exercise(t, m, mp, keys, depth+1, budget)
		}
		if deeper && depth < 4 {
			exercise(t, p.Member(name), full+".", keys, depth+1, budget)
		}
	}
	exerciseFilters(t, p)
	exercisePage(t, p)
}

var decimalRE = regexp.MustCompile(`^[+-]?[0-9]+$`)

func wantFuzzCode(t *testing.T, err error, code, param string) {
	t.Helper()
	e, ok := apierr.As(err)
	if !ok || e.Code != code {
		t.Fatalf("error %v for %q, want %s", err, param, code)
	}
	if !strings.Contains(e.Message, param) {
		t.Fatalf("%s message %q does not name %q", code, e.Message, param)
	}
}

func exerciseFilters(t *testing.T, p ec2query.Params) {
	filters, err := ec2query.ParseFilters(p)
	if err != nil {
		if e, ok := apierr.As(err); !ok || e.Code != apierr.MissingParameter || !strings.Contains(e.Message, ".Name") {
			t.Fatalf("ParseFilters: %v", err)
		}
		return
	}
	for _, fl := range filters {
		if fl.Name == "" {
			t.Fatal("ParseFilters returned a filter without a name")
		}
	}
	for _, tags := range []func(thing) ec2query.Tags{thingTags, nil} {
		m, err := ec2query.Compile(filters, knownFuzz, tags)
		if err != nil {
			if e, ok := apierr.As(err); !ok || e.Code != apierr.InvalidParameterValue {
				t.Fatalf("Compile: %v", err)
			}
			continue
		}
		got := m.Apply(fuzzThings)
		if len(filters) == 0 && len(got) != len(fuzzThings) {
			t.Fatal("no filters dropped resources")
		}
		for _, r := range got {
			if !m.Match(r) {
				t.Fatalf("Apply kept %q which Match rejects", r.Name)
			}
		}
	}
	// Every value, escaped, matches itself exactly; unescaped with a '*'
	// appended it matches itself.
	for _, fl := range filters {
		for _, v := range fl.Values {
			if !utf8.ValidString(v) || len(v) > 200 {
				continue
			}
			exact, err := ec2query.Compile([]ec2query.Filter{{Name: "name", Values: []string{escapeWildcards(v)}}}, knownFuzz, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !exact.Match(thing{Name: v}) {
				t.Fatalf("escaped %q does not match itself", v)
			}
			if exact.Match(thing{Name: v + "x"}) {
				t.Fatalf("escaped %q matches %q", v, v+"x")
			}
			star, err := ec2query.Compile([]ec2query.Filter{{Name: "name", Values: []string{"*", v + "*"}}}, knownFuzz, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !star.Match(thing{Name: v}) {
				t.Fatalf("'*' does not match %q", v)
			}
		}
	}
}

func exercisePage(t *testing.T, p ec2query.Params) {
	pg, err := ec2query.ParsePage(p, 5, 1000)
	if err != nil {
		if e, ok := apierr.As(err); !ok || e.Code != apierr.InvalidParameterValue || !strings.Contains(e.Message, "MaxResults") {
			t.Fatalf("ParsePage: %v", err)
		}
		return
	}
	if pg.Max != 0 && (pg.Max < 5 || pg.Max > 1000) {
		t.Fatalf("ParsePage let MaxResults %d through", pg.Max)
	}
	items := sortedItems(12)
	page, next, err := ec2query.Paginate(items, ident, pg)
	if err != nil {
		if e, ok := apierr.As(err); !ok || e.Code != apierr.InvalidNextToken {
			t.Fatalf("Paginate: %v", err)
		}
		return
	}
	if pg.Max > 0 && len(page) > pg.Max {
		t.Fatalf("page of %d > MaxResults %d", len(page), pg.Max)
	}
	if next != "" {
		if rest, _, err := ec2query.Paginate(items, ident, ec2query.Page{Max: pg.Max, Token: next}); err != nil || (len(rest) > 0 && rest[0] <= page[len(page)-1]) {
			t.Fatalf("next page after token %q: %v %v", next, rest, err)
		}
	}
}
