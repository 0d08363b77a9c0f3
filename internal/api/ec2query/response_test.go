package ec2query_test

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"nubo/internal/api/ec2query"
)

func TestTime(t *testing.T) {
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Date(2024, 5, 17, 12, 30, 0, 0, time.UTC), "2024-05-17T12:30:00.000Z"},
		{time.Date(2024, 5, 17, 12, 30, 1, 123456789, time.UTC), "2024-05-17T12:30:01.123Z"},
		{time.Date(2024, 5, 17, 14, 30, 0, 0, time.FixedZone("CEST", 2*3600)), "2024-05-17T12:30:00.000Z"},
	}
	for _, tt := range tests {
		if got := ec2query.Time(tt.in); got != tt.want {
			t.Errorf("Time(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestTagSet(t *testing.T) {
	if ec2query.TagSet(nil) != nil || ec2query.TagSet(map[string]string{}) != nil {
		t.Error("TagSet of no tags is not nil")
	}
	ts := ec2query.TagSet(map[string]string{"b": "2", "a": "1", "Z": "", "aa": "x"})
	var keys []string
	for _, tag := range ts.Items {
		keys = append(keys, tag.Key+"="+tag.Value)
	}
	if got := strings.Join(keys, ","); got != "Z=,a=1,aa=x,b=2" {
		t.Errorf("TagSet order %q", got)
	}
}

// How lists and tag sets render inside a response.
func TestListRendering(t *testing.T) {
	type resp struct {
		XMLName xml.Name                     `xml:"r"`
		Names   ec2query.List[string]        `xml:"nameSet"`
		Tags    *ec2query.List[ec2query.Tag] `xml:"tagSet,omitempty"`
	}
	tests := []struct {
		in   resp
		want string
	}{
		{resp{}, `<r><nameSet></nameSet></r>`},
		{resp{Names: ec2query.ListOf([]string{})}, `<r><nameSet></nameSet></r>`},
		{resp{Names: ec2query.ListOf([]string{"a", "<b>"})}, `<r><nameSet><item>a</item><item>&lt;b&gt;</item></nameSet></r>`},
		{resp{Tags: ec2query.TagSet(map[string]string{"k": "v"})}, `<r><nameSet></nameSet><tagSet><item><key>k</key><value>v</value></item></tagSet></r>`},
		{resp{Tags: ec2query.TagSet(nil)}, `<r><nameSet></nameSet></r>`},
	}
	for _, tt := range tests {
		b, err := xml.Marshal(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tt.want {
			t.Errorf("got  %s\nwant %s", b, tt.want)
		}
	}
}
