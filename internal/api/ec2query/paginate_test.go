package ec2query_test

import (
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"nubo/internal/api/ec2query"
	"nubo/internal/apierr"
)

func ident(s string) string { return s }

// sortedItems returns n distinct keys in ascending order, some sharing prefixes
// and some non-ASCII, so that tokens are not trivially short.
func sortedItems(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("key-%04d/é", i)
	}
	return out
}

// walk pages through items with max per page, returning the pages.
func walk(t *testing.T, items []string, max int) [][]string {
	t.Helper()
	var pages [][]string
	token := ""
	for i := 0; ; i++ {
		if i > len(items)+2 {
			t.Fatalf("pagination does not terminate (max %d)", max)
		}
		page, next, err := ec2query.Paginate(items, ident, ec2query.Page{Max: max, Token: token})
		wantNoError(t, err)
		pages = append(pages, page)
		if next == "" {
			return pages
		}
		if next == token {
			t.Fatalf("token %q repeated", next)
		}
		if len(page) == 0 {
			t.Fatalf("empty page before the last (page %d)", i)
		}
		token = next
	}
}

func TestPaginateCoversEverythingOnce(t *testing.T) {
	for _, n := range []int{0, 1, 5, 10, 23, 100} {
		items := sortedItems(n)
		for _, max := range []int{0, 1, 2, 3, 5, 7, 10, 22, 23, 24, 1000} {
			t.Run(fmt.Sprintf("n=%d max=%d", n, max), func(t *testing.T) {
				pages := walk(t, items, max)
				var all []string
				for i, p := range pages {
					if max > 0 && len(p) > max {
						t.Errorf("page %d has %d items, more than MaxResults %d", i, len(p), max)
					}
					if i < len(pages)-1 && len(p) != max {
						t.Errorf("page %d is short (%d of %d) but not last", i, len(p), max)
					}
					all = append(all, p...)
				}
				if len(all) == 0 {
					all = []string{}
				}
				if !reflect.DeepEqual(all, items) {
					t.Errorf("pages joined = %v, want %v", all, items)
				}
				wantPages := 1
				if max > 0 && n > max {
					wantPages = (n + max - 1) / max
				}
				if len(pages) != wantPages {
					t.Errorf("got %d pages, want %d (no trailing empty page)", len(pages), wantPages)
				}
			})
		}
	}
}

// A token stays valid when items before or after it change: the next page
// starts after the last key returned.
func TestPaginateTokenIsPosition(t *testing.T) {
	items := []string{"a", "b", "c", "d", "e"}
	page, next, err := ec2query.Paginate(items, ident, ec2query.Page{Max: 2})
	wantNoError(t, err)
	if !reflect.DeepEqual(page, []string{"a", "b"}) || next == "" {
		t.Fatalf("first page %v, token %q", page, next)
	}
	// "b" deleted and "bb" inserted meanwhile.
	changed := []string{"a", "bb", "c", "d", "e"}
	page, next2, err := ec2query.Paginate(changed, ident, ec2query.Page{Max: 2, Token: next})
	wantNoError(t, err)
	if !reflect.DeepEqual(page, []string{"bb", "c"}) {
		t.Errorf("second page %v, want [bb c]", page)
	}
	page, next3, err := ec2query.Paginate(changed, ident, ec2query.Page{Max: 2, Token: next2})
	wantNoError(t, err)
	if !reflect.DeepEqual(page, []string{"d", "e"}) || next3 != "" {
		t.Errorf("last page %v token %q, want [d e] and no token", page, next3)
	}
	// Everything after the token gone: an empty last page.
	page, next4, err := ec2query.Paginate([]string{"a"}, ident, ec2query.Page{Max: 2, Token: next})
	wantNoError(t, err)
	if len(page) != 0 || next4 != "" {
		t.Errorf("got %v, %q; want an empty last page", page, next4)
	}
}

// Tokens are opaque strings a client copies into a query: URL-safe, no padding.
func TestPaginateTokenIsURLSafe(t *testing.T) {
	items := []string{"\x00\xff weird", "a+b/c=?&d", "z"} // sorted
	_, next, err := ec2query.Paginate(items, ident, ec2query.Page{Max: 1})
	wantNoError(t, err)
	if next == "" || url.QueryEscape(next) != next {
		t.Errorf("token %q is not URL-safe", next)
	}
	page, _, err := ec2query.Paginate(items, ident, ec2query.Page{Max: 1, Token: next})
	wantNoError(t, err)
	if !reflect.DeepEqual(page, []string{"a+b/c=?&d"}) {
		t.Errorf("page after token %v", page)
	}
}

func TestPaginateBadToken(t *testing.T) {
	items := sortedItems(5)
	for _, tok := range []string{"!!!", "a", "YQ==", "not a token", "%%%", "====", "a.b"} {
		t.Run(tok, func(t *testing.T) {
			page, next, err := ec2query.Paginate(items, ident, ec2query.Page{Max: 2, Token: tok})
			e := wantCode(t, err, apierr.InvalidNextToken)
			if page != nil || next != "" {
				t.Errorf("got page %v / token %q along with an error", page, next)
			}
			if !strings.Contains(e.Message, tok) {
				t.Errorf("message %q does not quote the token", e.Message)
			}
		})
	}
}

func TestParsePage(t *testing.T) {
	tests := []struct {
		raw     string
		want    ec2query.Page
		wantErr bool
	}{
		{raw: "", want: ec2query.Page{}},
		{raw: "MaxResults=5", want: ec2query.Page{Max: 5}},
		{raw: "MaxResults=1000", want: ec2query.Page{Max: 1000}},
		{raw: "MaxResults=50&NextToken=abc", want: ec2query.Page{Max: 50, Token: "abc"}},
		{raw: "NextToken=abc", want: ec2query.Page{Token: "abc"}},
		{raw: "MaxResults=4", wantErr: true},
		{raw: "MaxResults=0", wantErr: true},
		{raw: "MaxResults=-1", wantErr: true},
		{raw: "MaxResults=1001", wantErr: true},
		{raw: "MaxResults=99999999999999999999", wantErr: true},
		{raw: "MaxResults=ten", wantErr: true},
		{raw: "MaxResults=", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			pg, err := ec2query.ParsePage(mustParse(t, tt.raw), 5, 1000)
			if tt.wantErr {
				e := wantCode(t, err, apierr.InvalidParameterValue)
				if !strings.Contains(e.Message, "MaxResults") {
					t.Errorf("message %q does not name MaxResults", e.Message)
				}
				v, _ := url.ParseQuery(tt.raw)
				if val := v.Get("MaxResults"); val != "" && !strings.Contains(e.Message, val) {
					t.Errorf("message %q does not quote the value %q", e.Message, val)
				}
				return
			}
			wantNoError(t, err)
			if pg != tt.want {
				t.Errorf("got %+v, want %+v", pg, tt.want)
			}
		})
	}
	// The range in the message is the one asked for.
	_, err := ec2query.ParsePage(mustParse(t, "MaxResults=1"), 5, 200)
	if e := wantCode(t, err, apierr.InvalidParameterValue); !strings.Contains(e.Message, "5") || !strings.Contains(e.Message, "200") {
		t.Errorf("message %q does not give the range 5..200", e.Message)
	}
}

// ParsePage and Paginate together, through wire parameters.
func TestPaginateFromWire(t *testing.T) {
	items := sortedItems(12)
	var got []string
	token := ""
	for pages := 0; ; pages++ {
		raw := "MaxResults=5"
		if token != "" {
			raw += "&NextToken=" + url.QueryEscape(token)
		}
		pg, err := ec2query.ParsePage(mustParse(t, raw), 5, 1000)
		wantNoError(t, err)
		page, next, err := ec2query.Paginate(items, ident, pg)
		wantNoError(t, err)
		got = append(got, page...)
		if next == "" {
			if pages != 2 {
				t.Errorf("took %d pages, want 3", pages+1)
			}
			break
		}
		token = next
		if pages > 10 {
			t.Fatal("does not terminate")
		}
	}
	if !reflect.DeepEqual(got, items) {
		t.Errorf("got %v", got)
	}
}
