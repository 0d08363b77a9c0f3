package ec2query_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"nubo/internal/api/ec2query"
	"nubo/internal/apierr"
)

const (
	ec2Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/"
	secretDetail = "secret-internal-detail"
)

var requestIDRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// syncBuffer is a log sink safe for concurrent handlers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type thingItem struct {
	Name string `xml:"thingName"`
}

type fixture struct {
	srv       *ec2query.Server
	logs      *syncBuffer
	mutations atomic.Int32
	seen      atomic.Pointer[ec2query.Request]
}

var nameFilters = map[string]ec2query.FilterFunc[string]{
	"name": func(s string) []string { return []string{s} },
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{logs: &syncBuffer{}}
	f.srv = &ec2query.Server{
		Region: testRegion,
		Log:    slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:    func() time.Time { return signTime },
		Lookup: func(ak string) (ec2query.Account, bool) {
			if ak == testAccessKey {
				return ec2query.Account{ID: testAccountID, Secret: testSecret}, true
			}
			return ec2query.Account{}, false
		},
		Actions: map[string]ec2query.Handler{
			// Read-only, with filters and pagination like a real Describe call.
			"DescribeThings": func(ctx context.Context, r *ec2query.Request) (any, error) {
				f.seen.Store(r)
				filters, err := ec2query.ParseFilters(r.Params)
				if err != nil {
					return nil, err
				}
				m, err := ec2query.Compile(filters, nameFilters, nil)
				if err != nil {
					return nil, err
				}
				pg, err := ec2query.ParsePage(r.Params, 5, 1000)
				if err != nil {
					return nil, err
				}
				page, next, err := ec2query.Paginate(m.Apply([]string{"alpha", "beta", "gamma"}), ident, pg)
				if err != nil {
					return nil, err
				}
				items := make([]thingItem, len(page))
				for i, n := range page {
					items[i] = thingItem{n}
				}
				return struct {
					Things    ec2query.List[thingItem] `xml:"thingSet"`
					NextToken string                   `xml:"nextToken,omitempty"`
				}{ec2query.ListOf(items), next}, nil
			},
			// Mutating: validates, then checks DryRun, then changes state.
			"CreateThing": func(ctx context.Context, r *ec2query.Request) (any, error) {
				name, err := r.Params.Required("ThingName")
				if err != nil {
					return nil, err
				}
				if err := r.CheckDryRun(); err != nil {
					return nil, err
				}
				f.mutations.Add(1)
				return struct {
					Return bool   `xml:"return"`
					Name   string `xml:"thingName"`
				}{true, name}, nil
			},
			"Whoami": func(ctx context.Context, r *ec2query.Request) (any, error) {
				return struct {
					Account   string `xml:"account"`
					Action    string `xml:"action"`
					Version   string `xml:"version"`
					RequestID string `xml:"reqId"`
				}{r.Account, r.Action, r.Version, r.RequestID}, nil
			},
			"NoBody": func(ctx context.Context, r *ec2query.Request) (any, error) { return nil, nil },
			"Explode": func(ctx context.Context, r *ec2query.Request) (any, error) {
				panic("boom: " + secretDetail)
			},
			"ExplodeRuntime": func(ctx context.Context, r *ec2query.Request) (any, error) {
				var m map[string]int
				m[secretDetail]++ // assignment to entry in nil map
				return nil, nil
			},
			"FailPlain": func(ctx context.Context, r *ec2query.Request) (any, error) {
				return nil, errors.New("etcd unreachable: " + secretDetail)
			},
			"FailWrapped": func(ctx context.Context, r *ec2query.Request) (any, error) {
				return nil, fmt.Errorf("loading key pair: %w", apierr.New("InvalidKeyPair.NotFound", "The key pair 'k' does not exist"))
			},
			"FailThrottled": func(ctx context.Context, r *ec2query.Request) (any, error) {
				return nil, apierr.New("RequestLimitExceeded", "Request limit exceeded.")
			},
			// A response encoding/xml cannot encode is a server fault.
			"Unencodable": func(ctx context.Context, r *ec2query.Request) (any, error) {
				return struct {
					M map[string]string `xml:"m"`
				}{map[string]string{"a": "b"}}, nil
			},
		},
	}
	return f
}

// result is what a client sees of one response.
type result struct {
	status int
	header http.Header
	body   []byte
}

// serve runs r through the server; a panic escaping ServeHTTP fails the test.
func (f *fixture) serve(t *testing.T, r *http.Request) result {
	t.Helper()
	w := httptest.NewRecorder()
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("ServeHTTP panicked: %v", p)
			}
		}()
		f.srv.ServeHTTP(w, r)
	}()
	return result{w.Code, w.Header(), w.Body.Bytes()}
}

func post(t *testing.T, body string) *http.Request {
	return defaultSigner().sign(t, formPOST(body), body)
}

// elementPaths lists the slash-joined path of every element, in document order.
func elementPaths(t *testing.T, body []byte) []string {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(body))
	var stack, out []string
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("response is not well-formed XML: %v\n%s", err, body)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			stack = append(stack, tok.Name.Local)
			out = append(out, strings.Join(stack, "/"))
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		}
	}
	return out
}

type errorResponse struct {
	XMLName xml.Name `xml:"Response"`
	Errors  []struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Errors>Error"`
	RequestID string `xml:"RequestID"`
}

// wantError checks that res is EC2's error document with status and code, and
// returns the message.
func wantError(t *testing.T, res result, status int, code string) string {
	t.Helper()
	if res.status != status {
		t.Errorf("status %d, want %d\n%s", res.status, status, res.body)
	}
	if ct := res.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/xml") {
		t.Errorf("Content-Type %q, want text/xml", ct)
	}
	if !bytes.HasPrefix(res.body, []byte(`<?xml version="1.0" encoding="UTF-8"?>`)) {
		t.Errorf("error document has no XML declaration: %s", res.body)
	}
	want := []string{"Response", "Response/Errors", "Response/Errors/Error", "Response/Errors/Error/Code", "Response/Errors/Error/Message", "Response/RequestID"}
	if got := elementPaths(t, res.body); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("error document shape\n got %q\nwant %q\n%s", got, want, res.body)
	}
	var doc errorResponse
	if err := xml.Unmarshal(res.body, &doc); err != nil {
		t.Fatalf("error document: %v\n%s", err, res.body)
	}
	if doc.XMLName.Space != "" {
		t.Errorf("error document has namespace %q; EC2's has none", doc.XMLName.Space)
	}
	if !requestIDRE.MatchString(doc.RequestID) {
		t.Errorf("RequestID %q is not a UUID", doc.RequestID)
	}
	if len(doc.Errors) != 1 {
		t.Fatalf("%d errors in document, want 1\n%s", len(doc.Errors), res.body)
	}
	if doc.Errors[0].Code != code {
		t.Errorf("code %s (%s), want %s", doc.Errors[0].Code, doc.Errors[0].Message, code)
	}
	if doc.Errors[0].Message == "" {
		t.Error("empty error message")
	}
	return doc.Errors[0].Message
}

type successResponse struct {
	XMLName   xml.Name
	RequestID string `xml:"requestId"`
	Things    *struct {
		Items []thingItem `xml:"item"`
	} `xml:"thingSet"`
	NextToken *string `xml:"nextToken"`
}

// wantSuccess checks a 200 response in the EC2 envelope for action and version.
func wantSuccess(t *testing.T, res result, action, version string) successResponse {
	t.Helper()
	if res.status != http.StatusOK {
		t.Fatalf("status %d, want 200\n%s", res.status, res.body)
	}
	if ct := res.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/xml") {
		t.Errorf("Content-Type %q, want text/xml", ct)
	}
	var doc successResponse
	if err := xml.Unmarshal(res.body, &doc); err != nil {
		t.Fatalf("response: %v\n%s", err, res.body)
	}
	if doc.XMLName.Local != action+"Response" {
		t.Errorf("root element %q, want %sResponse", doc.XMLName.Local, action)
	}
	if want := "http://ec2.amazonaws.com/doc/" + version + "/"; doc.XMLName.Space != want {
		t.Errorf("namespace %q, want %q", doc.XMLName.Space, want)
	}
	if !requestIDRE.MatchString(doc.RequestID) {
		t.Errorf("requestId %q is not a UUID", doc.RequestID)
	}
	if paths := elementPaths(t, res.body); len(paths) < 2 || paths[1] != action+"Response/requestId" {
		t.Errorf("requestId is not the first child: %q", paths)
	}
	return doc
}

func thingNames(doc successResponse) []string {
	out := []string{}
	if doc.Things != nil {
		for _, it := range doc.Things.Items {
			out = append(out, it.Name)
		}
	}
	return out
}

func TestServeSuccess(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name    string
		req     func(t *testing.T) *http.Request
		version string
		want    []string
	}{
		{"POST", func(t *testing.T) *http.Request {
			return post(t, "Action=DescribeThings&Version=2016-11-15")
		}, "2016-11-15", []string{"alpha", "beta", "gamma"}},
		{"POST older version", func(t *testing.T) *http.Request {
			return post(t, "Action=DescribeThings&Version=2014-10-01")
		}, "2014-10-01", []string{"alpha", "beta", "gamma"}},
		{"POST with filter", func(t *testing.T) *http.Request {
			return post(t, "Action=DescribeThings&Version=2016-11-15&Filter.1.Name=name&Filter.1.Value.1=*a&Filter.1.Value.2=b*")
		}, "2016-11-15", []string{"alpha", "beta", "gamma"}},
		{"POST with narrowing filter", func(t *testing.T) *http.Request {
			return post(t, "Action=DescribeThings&Version=2016-11-15&Filter.1.Name=name&Filter.1.Value.1=?e*")
		}, "2016-11-15", []string{"beta"}},
		{"GET signed in headers", func(t *testing.T) *http.Request {
			return defaultSigner().sign(t, queryGET("Action=DescribeThings&Version=2016-11-15&Filter.1.Name=name&Filter.1.Value.1=g*"), "")
		}, "2016-11-15", []string{"gamma"}},
		{"GET presigned", func(t *testing.T) *http.Request {
			return defaultSigner().presign(t, queryGET("Action=DescribeThings&Version=2016-11-15&Filter.1.Name=name&Filter.1.Value.1=a*"), 5*time.Minute)
		}, "2016-11-15", []string{"alpha"}},
		{"DryRun=false", func(t *testing.T) *http.Request {
			return post(t, "Action=DescribeThings&Version=2016-11-15&DryRun=false")
		}, "2016-11-15", []string{"alpha", "beta", "gamma"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := wantSuccess(t, f.serve(t, tt.req(t)), "DescribeThings", tt.version)
			if got := thingNames(doc); strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("things %q, want %q", got, tt.want)
			}
			if doc.NextToken != nil {
				t.Errorf("nextToken %q present on a complete listing", *doc.NextToken)
			}
		})
	}
}

func TestServeEmptyListRendersEmptyElement(t *testing.T) {
	f := newFixture(t)
	res := f.serve(t, post(t, "Action=DescribeThings&Version=2016-11-15&Filter.1.Name=name&Filter.1.Value.1=nothing"))
	doc := wantSuccess(t, res, "DescribeThings", "2016-11-15")
	if doc.Things == nil {
		t.Fatalf("no <thingSet> element for an empty list:\n%s", res.body)
	}
	if len(doc.Things.Items) != 0 {
		t.Errorf("items in an empty list: %+v", doc.Things.Items)
	}
	got := elementPaths(t, res.body)
	want := []string{"DescribeThingsResponse", "DescribeThingsResponse/requestId", "DescribeThingsResponse/thingSet"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("elements %q, want %q", got, want)
	}
}

func TestServePagination(t *testing.T) {
	f := newFixture(t)
	res := f.serve(t, post(t, "Action=DescribeThings&Version=2016-11-15&MaxResults=5"))
	doc := wantSuccess(t, res, "DescribeThings", "2016-11-15")
	if len(thingNames(doc)) != 3 || doc.NextToken != nil {
		t.Errorf("MaxResults=5 over 3 items: %q, token %v", thingNames(doc), doc.NextToken)
	}
	res = f.serve(t, post(t, "Action=DescribeThings&Version=2016-11-15&MaxResults=4"))
	msg := wantError(t, res, http.StatusBadRequest, apierr.InvalidParameterValue)
	if !strings.Contains(msg, "MaxResults") {
		t.Errorf("message %q does not name MaxResults", msg)
	}
	res = f.serve(t, post(t, "Action=DescribeThings&Version=2016-11-15&NextToken=%21%21"))
	wantError(t, res, http.StatusBadRequest, apierr.InvalidNextToken)
}

// The handler sees the authenticated account, the action, the version and the
// request ID the client gets back.
func TestServeRequestFields(t *testing.T) {
	f := newFixture(t)
	res := f.serve(t, post(t, "Action=Whoami&Version=2015-10-01"))
	wantSuccess(t, res, "Whoami", "2015-10-01")
	var doc struct {
		RequestID string `xml:"requestId"`
		Account   string `xml:"account"`
		Action    string `xml:"action"`
		Version   string `xml:"version"`
		ReqID     string `xml:"reqId"`
	}
	if err := xml.Unmarshal(res.body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Account != testAccountID {
		t.Errorf("account %q, want %q", doc.Account, testAccountID)
	}
	if doc.Action != "Whoami" || doc.Version != "2015-10-01" {
		t.Errorf("action %q version %q", doc.Action, doc.Version)
	}
	if doc.ReqID != doc.RequestID {
		t.Errorf("handler saw request ID %q, client got %q", doc.ReqID, doc.RequestID)
	}

	// Request IDs differ between requests.
	other := wantSuccess(t, f.serve(t, post(t, "Action=Whoami&Version=2015-10-01")), "Whoami", "2015-10-01")
	if other.RequestID == doc.RequestID {
		t.Errorf("two requests share request ID %s", doc.RequestID)
	}
}

func TestServeNilResponseBody(t *testing.T) {
	f := newFixture(t)
	res := f.serve(t, post(t, "Action=NoBody&Version=2016-11-15"))
	wantSuccess(t, res, "NoBody", "2016-11-15")
	if got := elementPaths(t, res.body); len(got) != 2 {
		t.Errorf("elements %q, want the envelope and requestId only", got)
	}
}

// Over a real connection: Content-Length arrives as a header, Host from the URL.
func TestServeOverTCP(t *testing.T) {
	f := newFixture(t)
	ts := httptest.NewServer(f.srv)
	defer ts.Close()
	for _, method := range []string{http.MethodPost, http.MethodGet} {
		t.Run(method, func(t *testing.T) {
			body := "Action=DescribeThings&Version=2016-11-15&Filter.1.Name=name&Filter.1.Value.1=b%2A"
			var r *http.Request
			var err error
			if method == http.MethodPost {
				r, err = http.NewRequest(method, ts.URL+"/", strings.NewReader(body))
				r.Header.Set("Content-Type", formType)
			} else {
				r, err = http.NewRequest(method, ts.URL+"/?"+body, nil)
				body = ""
			}
			if err != nil {
				t.Fatal(err)
			}
			defaultSigner().sign(t, r, body)
			resp, err := ts.Client().Do(r)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			doc := wantSuccess(t, result{resp.StatusCode, resp.Header, b}, "DescribeThings", "2016-11-15")
			if got := thingNames(doc); strings.Join(got, ",") != "beta" {
				t.Errorf("things %q", got)
			}
		})
	}
	// An error over the wire: 401 and the document.
	r, _ := http.NewRequest(http.MethodPost, ts.URL+"/", strings.NewReader("Action=DescribeThings&Version=2016-11-15"))
	r.Header.Set("Content-Type", formType)
	s := defaultSigner()
	s.secret = "wrong"
	s.sign(t, r, "Action=DescribeThings&Version=2016-11-15")
	resp, err := ts.Client().Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	wantError(t, result{resp.StatusCode, resp.Header, b}, http.StatusUnauthorized, apierr.AuthFailure)
}

func TestServeErrors(t *testing.T) {
	f := newFixture(t)
	wrong := func(mod func(*signer)) signer { s := defaultSigner(); mod(&s); return s }
	tests := []struct {
		name       string
		req        func(t *testing.T) *http.Request
		status     int
		code       string
		msgHas     string
		msgHasNot  string
		logHas     string
		wantNoMuts bool
	}{
		{name: "unknown action", status: 400, code: apierr.InvalidAction, msgHas: "NoSuchThing",
			req: func(t *testing.T) *http.Request { return post(t, "Action=NoSuchThing&Version=2016-11-15") }},
		{name: "action name is case sensitive", status: 400, code: apierr.InvalidAction,
			req: func(t *testing.T) *http.Request { return post(t, "Action=describethings&Version=2016-11-15") }},
		{name: "missing action", status: 400, code: apierr.MissingAction,
			req: func(t *testing.T) *http.Request { return post(t, "Version=2016-11-15") }},
		{name: "empty action", status: 400, code: apierr.MissingAction,
			req: func(t *testing.T) *http.Request { return post(t, "Action=&Version=2016-11-15") }},
		{name: "missing version", status: 400, code: apierr.MissingParameter, msgHas: "Version",
			req: func(t *testing.T) *http.Request { return post(t, "Action=DescribeThings") }},
		{name: "malformed version", status: 400, code: apierr.NoSuchVersion, msgHas: "latest",
			req: func(t *testing.T) *http.Request { return post(t, "Action=DescribeThings&Version=latest") }},
		{name: "bad DryRun value", status: 400, code: apierr.InvalidParameterValue, msgHas: "DryRun",
			req: func(t *testing.T) *http.Request {
				return post(t, "Action=DescribeThings&Version=2016-11-15&DryRun=perhaps")
			}},
		{name: "unknown filter", status: 400, code: apierr.InvalidParameterValue, msgHas: "'colour'",
			req: func(t *testing.T) *http.Request {
				return post(t, "Action=DescribeThings&Version=2016-11-15&Filter.1.Name=colour&Filter.1.Value.1=red")
			}},
		{name: "filter without name", status: 400, code: apierr.MissingParameter, msgHas: "Filter.2.Name",
			req: func(t *testing.T) *http.Request {
				return post(t, "Action=DescribeThings&Version=2016-11-15&Filter.1.Name=name&Filter.1.Value.1=a&Filter.2.Value.1=b")
			}},
		{name: "malformed body", status: 400, code: apierr.MalformedQueryString,
			req: func(t *testing.T) *http.Request {
				return post(t, "Action=DescribeThings&Version=2016-11-15&KeyName.1=%ZZ")
			}},
		{name: "malformed query", status: 400, code: apierr.MalformedQueryString,
			req: func(t *testing.T) *http.Request {
				r := post(t, "Action=DescribeThings&Version=2016-11-15")
				r.URL.RawQuery = "x=%G0"
				return r
			}},
		{name: "wrapped EC2 error keeps its code", status: 400, code: "InvalidKeyPair.NotFound", msgHas: "'k'",
			req: func(t *testing.T) *http.Request { return post(t, "Action=FailWrapped&Version=2016-11-15") }},
		{name: "service-unavailable family", status: 503, code: "RequestLimitExceeded",
			req: func(t *testing.T) *http.Request { return post(t, "Action=FailThrottled&Version=2016-11-15") }},
		{name: "wrong secret", status: 401, code: apierr.AuthFailure,
			req: func(t *testing.T) *http.Request {
				b := "Action=DescribeThings&Version=2016-11-15"
				return wrong(func(s *signer) { s.secret = "nope" }).sign(t, formPOST(b), b)
			}},
		{name: "unknown access key", status: 401, code: apierr.AuthFailure,
			req: func(t *testing.T) *http.Request {
				b := "Action=DescribeThings&Version=2016-11-15"
				return wrong(func(s *signer) { s.accessKey = "AKIANOBODY" }).sign(t, formPOST(b), b)
			}},
		{name: "wrong region", status: 401, code: apierr.AuthFailure,
			req: func(t *testing.T) *http.Request {
				b := "Action=DescribeThings&Version=2016-11-15"
				return wrong(func(s *signer) { s.region = "eu-central-1" }).sign(t, formPOST(b), b)
			}},
		{name: "tampered body", status: 401, code: apierr.AuthFailure, wantNoMuts: true,
			req: func(t *testing.T) *http.Request {
				r := post(t, "Action=CreateThing&Version=2016-11-15&ThingName=a")
				r.Body = io.NopCloser(strings.NewReader("Action=CreateThing&Version=2016-11-15&ThingName=b"))
				return r
			}},
		{name: "unsigned", status: 401, code: apierr.MissingAuthenticationToken,
			req: func(t *testing.T) *http.Request { return formPOST("Action=DescribeThings&Version=2016-11-15") }},
		{name: "unsigned unknown action: authentication first", status: 401, code: apierr.MissingAuthenticationToken,
			req: func(t *testing.T) *http.Request { return formPOST("Action=NoSuchThing&Version=2016-11-15") }},
		{name: "expired", status: 400, code: apierr.RequestExpired,
			req: func(t *testing.T) *http.Request {
				b := "Action=DescribeThings&Version=2016-11-15"
				return wrong(func(s *signer) { s.at = signTime.Add(-20 * time.Minute) }).sign(t, formPOST(b), b)
			}},
		{name: "malformed Authorization", status: 400, code: apierr.IncompleteSignature,
			req: func(t *testing.T) *http.Request {
				r := post(t, "Action=DescribeThings&Version=2016-11-15")
				r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=x")
				return r
			}},
		{name: "panic", status: 500, code: apierr.InternalError, msgHasNot: secretDetail, logHas: secretDetail,
			req: func(t *testing.T) *http.Request { return post(t, "Action=Explode&Version=2016-11-15") }},
		{name: "runtime panic", status: 500, code: apierr.InternalError, msgHasNot: secretDetail,
			req: func(t *testing.T) *http.Request { return post(t, "Action=ExplodeRuntime&Version=2016-11-15") }},
		{name: "plain error", status: 500, code: apierr.InternalError, msgHasNot: secretDetail, logHas: secretDetail,
			req: func(t *testing.T) *http.Request { return post(t, "Action=FailPlain&Version=2016-11-15") }},
		{name: "panic under DryRun", status: 500, code: apierr.InternalError, msgHasNot: secretDetail,
			req: func(t *testing.T) *http.Request { return post(t, "Action=Explode&Version=2016-11-15&DryRun=true") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.mutations.Load()
			res := f.serve(t, tt.req(t))
			msg := wantError(t, res, tt.status, tt.code)
			if tt.msgHas != "" && !strings.Contains(msg, tt.msgHas) {
				t.Errorf("message %q does not contain %q", msg, tt.msgHas)
			}
			if tt.msgHasNot != "" && bytes.Contains(res.body, []byte(tt.msgHasNot)) {
				t.Errorf("response leaks %q:\n%s", tt.msgHasNot, res.body)
			}
			if bytes.Contains(res.body, []byte("goroutine ")) || bytes.Contains(res.body, []byte(".go:")) {
				t.Errorf("response leaks a stack trace:\n%s", res.body)
			}
			if tt.logHas != "" && !strings.Contains(f.logs.String(), tt.logHas) {
				t.Errorf("server log does not record %q", tt.logHas)
			}
			if tt.wantNoMuts && f.mutations.Load() != before {
				t.Error("a rejected request changed state")
			}
		})
	}
}

// A response body encoding/xml cannot encode must reach the client as
// InternalError (500), never as a 200 with an empty or truncated body.
func TestServeUnencodableResponseIsInternalError(t *testing.T) {
	f := newFixture(t)
	res := f.serve(t, post(t, "Action=Unencodable&Version=2016-11-15"))
	if res.status == http.StatusOK {
		t.Fatalf("BUG: an XML encoding failure is answered with 200 and a %d-byte body %q; "+
			"writeResponse returns before writing and ServeHTTP only logs the error", len(res.body), res.body)
	}
	wantError(t, res, http.StatusInternalServerError, apierr.InternalError)
}

func TestServeDryRun(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		status    int
		code      string // "" for success
		mutations int32
	}{
		{"read-only action", "Action=DescribeThings&Version=2016-11-15&DryRun=true", 412, apierr.DryRunOperation, 0},
		{"read-only action, DryRun=TRUE", "Action=DescribeThings&Version=2016-11-15&DryRun=TRUE", 412, apierr.DryRunOperation, 0},
		{"mutating action", "Action=CreateThing&Version=2016-11-15&ThingName=t&DryRun=true", 412, apierr.DryRunOperation, 0},
		{"mutating action, invalid request: validation error wins", "Action=CreateThing&Version=2016-11-15&DryRun=true", 400, apierr.MissingParameter, 0},
		{"read-only action, invalid request: validation error wins", "Action=DescribeThings&Version=2016-11-15&DryRun=true&Filter.1.Name=bogus&Filter.1.Value.1=x", 400, apierr.InvalidParameterValue, 0},
		{"mutating action, DryRun=false", "Action=CreateThing&Version=2016-11-15&ThingName=t&DryRun=false", 200, "", 1},
		{"mutating action, no DryRun", "Action=CreateThing&Version=2016-11-15&ThingName=t", 200, "", 1},
		{"handler error under DryRun", "Action=FailWrapped&Version=2016-11-15&DryRun=true", 400, "InvalidKeyPair.NotFound", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			res := f.serve(t, post(t, tt.body))
			if tt.code == "" {
				wantSuccess(t, res, "CreateThing", "2016-11-15")
			} else {
				msg := wantError(t, res, tt.status, tt.code)
				if tt.code == apierr.DryRunOperation && msg != "Request would have succeeded, but DryRun flag is set." {
					t.Errorf("message %q differs from EC2's", msg)
				}
			}
			if got := f.mutations.Load(); got != tt.mutations {
				t.Errorf("%d mutations, want %d", got, tt.mutations)
			}
		})
	}
}

// No client mistake may be answered with a 5xx.
func TestServeClientErrorsAreNever500(t *testing.T) {
	f := newFixture(t)
	big := "Action=DescribeThings&Version=2016-11-15&UserData=" + strings.Repeat("A", ec2query.MaxBodyBytes)
	reqs := map[string]func(t *testing.T) *http.Request{
		"PUT": func(t *testing.T) *http.Request {
			b := "Action=DescribeThings&Version=2016-11-15"
			r := httptest.NewRequest(http.MethodPut, testEndpoint, strings.NewReader(b))
			return defaultSigner().sign(t, r, b)
		},
		"DELETE unsigned": func(t *testing.T) *http.Request { return httptest.NewRequest(http.MethodDelete, testEndpoint, nil) },
		"body over the limit": func(t *testing.T) *http.Request {
			return defaultSigner().sign(t, formPOST(big), big)
		},
		"body over the limit, unsigned": func(t *testing.T) *http.Request { return formPOST(big) },
		"empty POST unsigned":           func(t *testing.T) *http.Request { return formPOST("") },
		"empty POST signed":             func(t *testing.T) *http.Request { return post(t, "") },
		"semicolon body":                func(t *testing.T) *http.Request { return post(t, "Action=DescribeThings;Version=2016-11-15") },
		"bad escape in key": func(t *testing.T) *http.Request {
			return post(t, "Action=DescribeThings&Version=2016-11-15&%=x")
		},
		"Version with junk": func(t *testing.T) *http.Request { return post(t, "Action=DescribeThings&Version=2016-11-15x") },
		"MaxResults overflow": func(t *testing.T) *http.Request {
			return post(t, "Action=DescribeThings&Version=2016-11-15&MaxResults=99999999999999999999999")
		},
		"MaxResults negative": func(t *testing.T) *http.Request {
			return post(t, "Action=DescribeThings&Version=2016-11-15&MaxResults=-5")
		},
		"NextToken garbage": func(t *testing.T) *http.Request {
			return post(t, "Action=DescribeThings&Version=2016-11-15&NextToken=%00%01")
		},
		"filter name empty": func(t *testing.T) *http.Request {
			return post(t, "Action=DescribeThings&Version=2016-11-15&Filter.1.Name=&Filter.1.Value.1=x")
		},
		"filter tag on untaggable": func(t *testing.T) *http.Request {
			return post(t, "Action=DescribeThings&Version=2016-11-15&Filter.1.Name=tag:Name&Filter.1.Value.1=x")
		},
		"Authorization garbage": func(t *testing.T) *http.Request {
			r := formPOST("Action=DescribeThings&Version=2016-11-15")
			r.Header.Set("Authorization", "\x00\x01 , = , ==")
			return r
		},
		"Credential with empty parts": func(t *testing.T) *http.Request {
			r := formPOST("Action=DescribeThings&Version=2016-11-15")
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=////aws4_request, SignedHeaders=host, Signature=00")
			r.Header.Set("X-Amz-Date", signTime.Format("20060102T150405Z"))
			return r
		},
		"presigned garbage": func(t *testing.T) *http.Request {
			return queryGET("Action=DescribeThings&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=x&X-Amz-Credential=a&X-Amz-Signature=b&X-Amz-Date=c&X-Amz-SignedHeaders=host")
		},
		"presigned negative expiry": func(t *testing.T) *http.Request {
			return queryGET("Action=DescribeThings&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=-1&X-Amz-Credential=a/b/c/d/aws4_request&X-Amz-Signature=b&X-Amz-Date=20240517T123000Z&X-Amz-SignedHeaders=host")
		},
		"presigned huge expiry": func(t *testing.T) *http.Request {
			return queryGET("Action=DescribeThings&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=999999999999999999999&X-Amz-Credential=a/b/c/d/aws4_request&X-Amz-Signature=b&X-Amz-Date=20240517T123000Z&X-Amz-SignedHeaders=host")
		},
		"X-Amz-Date far future": func(t *testing.T) *http.Request {
			r := post(t, "Action=DescribeThings&Version=2016-11-15")
			r.Header.Set("X-Amz-Date", "99991231T235959Z")
			return r
		},
	}
	for name, req := range reqs {
		t.Run(name, func(t *testing.T) {
			res := f.serve(t, req(t))
			if res.status < 400 || res.status >= 500 {
				t.Fatalf("status %d for a client error\n%.500s", res.status, res.body)
			}
			var doc errorResponse
			if err := xml.Unmarshal(res.body, &doc); err != nil || len(doc.Errors) != 1 || doc.Errors[0].Code == "" {
				t.Fatalf("not an EC2 error document (%v):\n%.500s", err, res.body)
			}
			if doc.Errors[0].Code == apierr.InternalError {
				t.Errorf("InternalError for a client error: %s", doc.Errors[0].Message)
			}
		})
	}
}

// Concurrent requests each get their own account, request ID and answer.
func TestServeConcurrent(t *testing.T) {
	f := newFixture(t)
	const n = 32
	ids := make(chan string, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		r := post(t, "Action=Whoami&Version=2016-11-15")
		if i%2 == 1 {
			s := defaultSigner()
			s.secret = "wrong"
			b := "Action=Whoami&Version=2016-11-15"
			r = s.sign(t, formPOST(b), b)
		}
		wg.Add(1)
		go func(i int, r *http.Request) {
			defer wg.Done()
			w := httptest.NewRecorder()
			f.srv.ServeHTTP(w, r)
			want := http.StatusOK
			if i%2 == 1 {
				want = http.StatusUnauthorized
			}
			if w.Code != want {
				t.Errorf("request %d: status %d, want %d", i, w.Code, want)
				return
			}
			var doc struct {
				RequestID  string `xml:"requestId"`
				RequestID2 string `xml:"RequestID"`
				Account    string `xml:"account"`
			}
			if err := xml.Unmarshal(w.Body.Bytes(), &doc); err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			if i%2 == 0 && doc.Account != testAccountID {
				t.Errorf("request %d: account %q", i, doc.Account)
			}
			ids <- doc.RequestID + doc.RequestID2
		}(i, r)
	}
	wg.Wait()
	close(ids)
	seen := map[string]bool{}
	for id := range ids {
		if seen[id] {
			t.Errorf("request ID %s used twice", id)
		}
		seen[id] = true
	}
}

func TestStatusOf(t *testing.T) {
	tests := map[string]int{
		apierr.AuthFailure:                 401,
		apierr.MissingAuthenticationToken:  401,
		apierr.SignatureDoesNotMatch:       403,
		"UnauthorizedOperation":            403,
		apierr.DryRunOperation:             412,
		apierr.InternalError:               500,
		"Unavailable":                      503,
		"RequestLimitExceeded":             503,
		"ServiceUnavailable":               503,
		apierr.IncompleteSignature:         400,
		apierr.RequestExpired:              400,
		apierr.InvalidAction:               400,
		apierr.MissingAction:               400,
		apierr.MissingParameter:            400,
		apierr.InvalidParameterValue:       400,
		apierr.InvalidParameterCombination: 400,
		apierr.InvalidNextToken:            400,
		apierr.MalformedQueryString:        400,
		apierr.NoSuchVersion:               400,
		apierr.TagLimitExceeded:            400,
		apierr.UnsupportedOperation:        400,
		"InvalidKeyPair.NotFound":          400,
		"InvalidKeyPair.Duplicate":         400,
		"":                                 400,
	}
	for code, want := range tests {
		if got := ec2query.StatusOf(code); got != want {
			t.Errorf("StatusOf(%q) = %d, want %d", code, got, want)
		}
	}
}
