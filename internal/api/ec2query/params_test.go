package ec2query_test

import (
	"net/url"
	"reflect"
	"strings"
	"testing"

	"nubo/internal/api/ec2query"
	"nubo/internal/apierr"
)

func mustParse(t *testing.T, raw string) ec2query.Params {
	t.Helper()
	p, err := ec2query.ParseParams(raw)
	if err != nil {
		t.Fatalf("ParseParams(%q): %v", raw, err)
	}
	return p
}

func TestParseParamsDecoding(t *testing.T) {
	p := mustParse(t, "Action=DescribeKeyPairs&Version=2016-11-15&KeyName.1=my+key&KeyName.2=a%2Ab%3F&Desc=caf%C3%A9&Empty=&Bare")
	for name, want := range map[string]string{
		"Action":    "DescribeKeyPairs",
		"Version":   "2016-11-15",
		"KeyName.1": "my key",
		"KeyName.2": "a*b?",
		"Desc":      "café",
		"Empty":     "",
		"Bare":      "",
		"Absent":    "",
	} {
		if got := p.String(name); got != want {
			t.Errorf("String(%q) = %q, want %q", name, got, want)
		}
	}
	for name, want := range map[string]bool{"Empty": true, "Bare": true, "Absent": false, "action": false} {
		if got := p.Has(name); got != want {
			t.Errorf("Has(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestParseParamsMalformed(t *testing.T) {
	for _, raw := range []string{
		"Action=Describe%ZZ",
		"Action=DescribeKeyPairs&KeyName.1=%",
		"KeyName.1=%4",
		"%zz=1",
		"Action=DescribeKeyPairs;Version=2016-11-15",
		"Action=A&Filter.1.Value.1=%E",
	} {
		t.Run(raw, func(t *testing.T) {
			_, err := ec2query.ParseParams(raw)
			wantCode(t, err, apierr.MalformedQueryString)
		})
	}
}

func TestStringsOrderedByNumericIndex(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want []string
	}{
		{"numeric not lexical", "KeyName.10=ten&KeyName.2=two&KeyName.1=one&KeyName.11=eleven&KeyName.9=nine",
			[]string{"one", "two", "nine", "ten", "eleven"}},
		{"gaps are skipped, order kept", "KeyName.7=c&KeyName.1=a&KeyName.3=b", []string{"a", "b", "c"}},
		{"large index", "KeyName.1000=z&KeyName.999=y", []string{"y", "z"}},
		{"none", "Action=DescribeKeyPairs&KeyNames.1=x&KeyName=bare", []string{}},
		{"empty values kept", "KeyName.1=&KeyName.2=b", []string{"", "b"}},
		{"malformed indexes ignored",
			"KeyName.0=zero&KeyName.01=lead&KeyName.x=x&KeyName.-1=neg&KeyName.+2=plus&KeyName.=empty&KeyName..1=dots" +
				"&KeyName.1e1=exp&KeyName.%201=space&KeyName.1%20=trail&KeyName.99999999999999999999999=huge&KeyName.0x1=hex" +
				"&KeyName.2=two&KeyName.1=one",
			[]string{"one", "two"}},
		{"case sensitive name", "keyname.1=lower&KeyName.1=upper", []string{"upper"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustParse(t, tt.raw).Strings("KeyName")
			if got == nil {
				got = []string{}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Strings = %q, want %q", got, tt.want)
			}
		})
	}
}

// memberNames lists the wire names members give their "Name" parameter.
func memberNames(ms []ec2query.Params, field string) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.Name(field))
	}
	return out
}

func TestMembers(t *testing.T) {
	p := mustParse(t, strings.Join([]string{
		"Filter.10.Name=ten", "Filter.10.Value.1=t1",
		"Filter.2.Name=two", "Filter.2.Value.10=v10", "Filter.2.Value.2=v2", "Filter.2.Value.1=v1",
		"Filter.1.Name=one", "Filter.1.Value.3=x",
		"Filter.0.Name=zero", "Filter.01.Name=lead", "Filter.x.Name=x", "Filter..Name=none",
	}, "&"))
	ms := p.Members("Filter")
	if got, want := memberNames(ms, "Name"), []string{"Filter.1.Name", "Filter.2.Name", "Filter.10.Name"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("member names = %q, want %q", got, want)
	}
	wantNames := []string{"one", "two", "ten"}
	wantValues := [][]string{{"x"}, {"v1", "v2", "v10"}, {"t1"}}
	for i, m := range ms {
		if got := m.String("Name"); got != wantNames[i] {
			t.Errorf("member %d Name = %q, want %q", i, got, wantNames[i])
		}
		if got := m.Strings("Value"); !reflect.DeepEqual(got, wantValues[i]) {
			t.Errorf("member %d values = %q, want %q", i, got, wantValues[i])
		}
		if !m.Has("Name") || m.Has("Action") {
			t.Errorf("member %d: Has sees outside its prefix", i)
		}
	}
	if got := p.Members("Nothing"); len(got) != 0 {
		t.Errorf("Members of an absent list = %d members", len(got))
	}
	// A member index counted once even with many fields.
	if got := len(mustParse(t, "Tag.1.Key=k&Tag.1.Value=v&Tag.1=x").Members("Tag")); got != 1 {
		t.Errorf("got %d members for one index", got)
	}
}

func TestNestedMembersAndNames(t *testing.T) {
	p := mustParse(t, strings.Join([]string{
		"TagSpecification.1.ResourceType=key-pair",
		"TagSpecification.1.Tag.1.Key=Name", "TagSpecification.1.Tag.1.Value=web",
		"TagSpecification.1.Tag.3.Key=Env", // Tag.2 missing: the wire index stays 3
		"TagSpecification.4.Tag.1.Key=Team",
	}, "&"))
	specs := p.Members("TagSpecification")
	if len(specs) != 2 {
		t.Fatalf("got %d tag specifications, want 2", len(specs))
	}
	tags := specs[0].Members("Tag")
	if got, want := memberNames(tags, "Key"), []string{"TagSpecification.1.Tag.1.Key", "TagSpecification.1.Tag.3.Key"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("nested names = %q, want %q", got, want)
	}
	if got := tags[1].String("Key"); got != "Env" {
		t.Errorf("Tag.3.Key = %q", got)
	}
	// Required on an absent nested field names the full wire parameter.
	_, err := tags[1].Required("Value")
	if e := wantCode(t, err, apierr.MissingParameter); !strings.Contains(e.Message, "TagSpecification.1.Tag.3.Value") {
		t.Errorf("message %q does not name TagSpecification.1.Tag.3.Value", e.Message)
	}
	_, err = specs[1].Required("ResourceType")
	if e := wantCode(t, err, apierr.MissingParameter); !strings.Contains(e.Message, "TagSpecification.4.ResourceType") {
		t.Errorf("message %q does not name TagSpecification.4.ResourceType", e.Message)
	}
	if v, err := specs[0].Required("ResourceType"); err != nil || v != "key-pair" {
		t.Errorf("Required(ResourceType) = %q, %v", v, err)
	}
	if got := specs[1].Members("Tag")[0].Name("Key"); got != "TagSpecification.4.Tag.1.Key" {
		t.Errorf("Name = %q", got)
	}
	// Member is a non-list structure.
	pl := mustParse(t, "Placement.AvailabilityZone=us-east-1a&Placement.Tenancy=default").Member("Placement")
	if got := pl.String("AvailabilityZone"); got != "us-east-1a" {
		t.Errorf("Placement.AvailabilityZone = %q", got)
	}
	if got := pl.Name("GroupName"); got != "Placement.GroupName" {
		t.Errorf("Placement Name = %q", got)
	}
	_, err = pl.Required("GroupName")
	if e := wantCode(t, err, apierr.MissingParameter); !strings.Contains(e.Message, "Placement.GroupName") {
		t.Errorf("message %q does not name Placement.GroupName", e.Message)
	}
}

func TestRequired(t *testing.T) {
	p := mustParse(t, "KeyName=k&Empty=")
	if v, err := p.Required("KeyName"); err != nil || v != "k" {
		t.Fatalf("Required(KeyName) = %q, %v", v, err)
	}
	for _, name := range []string{"Empty", "Absent"} {
		_, err := p.Required(name)
		e := wantCode(t, err, apierr.MissingParameter)
		if !strings.Contains(e.Message, name) {
			t.Errorf("message %q does not name %s", e.Message, name)
		}
	}
}

func TestBool(t *testing.T) {
	tests := []struct {
		value   string // "" with absent=true means the parameter is not sent
		absent  bool
		want    bool
		wantErr bool
	}{
		{absent: true, want: false},
		{value: "true", want: true},
		{value: "false", want: false},
		{value: "TRUE", want: true},
		{value: "False", want: false},
		{value: "yes", wantErr: true},
		{value: "1", wantErr: true},
		{value: "0", wantErr: true},
		{value: "t", wantErr: true},
		{value: "truee", wantErr: true},
		{value: "on", wantErr: true},
	}
	for _, tt := range tests {
		for _, member := range []bool{false, true} {
			v := url.Values{}
			name := "DryRun"
			if member {
				name = "Filter.3.Enabled"
			}
			if !tt.absent {
				v.Set(name, tt.value)
			}
			p := ec2query.NewParams(v)
			get := func() (bool, error) { return p.Bool("DryRun") }
			if member {
				get = func() (bool, error) { return p.Members("Filter")[0].Bool("Enabled") }
				if tt.absent {
					get = func() (bool, error) { return p.Member("Filter.3").Bool("Enabled") }
				}
			}
			t.Run(name+"="+tt.value, func(t *testing.T) {
				got, err := get()
				if tt.wantErr {
					e := wantCode(t, err, apierr.InvalidParameterValue)
					if !strings.Contains(e.Message, name) || !strings.Contains(e.Message, tt.value) {
						t.Errorf("message %q should name %s and its value %q", e.Message, name, tt.value)
					}
					return
				}
				wantNoError(t, err)
				if got != tt.want {
					t.Errorf("got %v, want %v", got, tt.want)
				}
			})
		}
	}
}

func TestOptBool(t *testing.T) {
	p := mustParse(t, "A=true&B=false&C=maybe")
	if b, err := p.OptBool("Absent"); err != nil || b != nil {
		t.Errorf("OptBool(Absent) = %v, %v; want nil, nil", b, err)
	}
	if b, err := p.OptBool("A"); err != nil || b == nil || !*b {
		t.Errorf("OptBool(A) = %v, %v; want true", b, err)
	}
	if b, err := p.OptBool("B"); err != nil || b == nil || *b {
		t.Errorf("OptBool(B) = %v, %v; want false", b, err)
	}
	_, err := p.OptBool("C")
	wantCode(t, err, apierr.InvalidParameterValue)
}

func TestInt(t *testing.T) {
	tests := []struct {
		raw     string
		want    int
		wantOK  bool
		wantErr bool
	}{
		{raw: "", want: 0, wantOK: false},
		{raw: "MaxResults=5", want: 5, wantOK: true},
		{raw: "MaxResults=0", want: 0, wantOK: true},
		{raw: "MaxResults=-3", want: -3, wantOK: true},
		{raw: "MaxResults=+4", want: 4, wantOK: true},
		{raw: "MaxResults=%2010%20", want: 10, wantOK: true},
		{raw: "MaxResults=1000", want: 1000, wantOK: true},
		{raw: "MaxResults=abc", wantOK: true, wantErr: true},
		{raw: "MaxResults=5.0", wantOK: true, wantErr: true},
		{raw: "MaxResults=1e3", wantOK: true, wantErr: true},
		{raw: "MaxResults=0x10", wantOK: true, wantErr: true},
		{raw: "MaxResults=99999999999999999999", wantOK: true, wantErr: true},
		{raw: "MaxResults=", wantOK: true, wantErr: true},
		{raw: "MaxResults=5%00", wantOK: true, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			n, ok, err := mustParse(t, tt.raw).Int("MaxResults")
			if ok != tt.wantOK {
				t.Errorf("ok = %v, want %v", ok, tt.wantOK)
			}
			if tt.wantErr {
				e := wantCode(t, err, apierr.InvalidParameterValue)
				if !strings.Contains(e.Message, "MaxResults") {
					t.Errorf("message %q does not name MaxResults", e.Message)
				}
				return
			}
			wantNoError(t, err)
			if n != tt.want {
				t.Errorf("n = %d, want %d", n, tt.want)
			}
		})
	}
	// A member's integer error names the member's full parameter.
	_, _, err := mustParse(t, "BlockDeviceMapping.2.Ebs.VolumeSize=big").Members("BlockDeviceMapping")[0].Member("Ebs").Int("VolumeSize")
	if e := wantCode(t, err, apierr.InvalidParameterValue); !strings.Contains(e.Message, "BlockDeviceMapping.2.Ebs.VolumeSize") || !strings.Contains(e.Message, "big") {
		t.Errorf("message %q should name BlockDeviceMapping.2.Ebs.VolumeSize and value big", e.Message)
	}
}

// NewParams wraps decoded values; members see the same values.
func TestNewParams(t *testing.T) {
	p := ec2query.NewParams(url.Values{"KeyName.2": {"b"}, "KeyName.1": {"a"}, "Filter.1.Name": {"n"}})
	if got := p.Strings("KeyName"); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("Strings = %q", got)
	}
	if got := p.Members("Filter")[0].String("Name"); got != "n" {
		t.Errorf("member Name = %q", got)
	}
	var zero ec2query.Params
	if zero.Has("x") || zero.String("x") != "" || len(zero.Strings("x")) != 0 || len(zero.Members("x")) != 0 {
		t.Error("zero Params is not empty")
	}
}
