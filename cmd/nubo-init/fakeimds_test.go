package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeIMDS is an instance metadata service with EC2's IMDSv2 protocol and
// whatever items a test gives it, below /latest/.
type fakeIMDS struct {
	*httptest.Server
	mu        sync.Mutex
	items     map[string]string
	refuse    int  // answer the next token requests with 503 (a service coming up)
	forbid    bool // answer 403 to everything (the service turned off)
	requests  []string
	tokenSeen int
}

const fakeToken = "AQAEAFakeToken=="

func newFakeIMDS(t *testing.T, items map[string]string) *fakeIMDS {
	f := &fakeIMDS{items: items}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeIMDS) set(path, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.items[path] = body
}

func (f *fakeIMDS) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

func (f *fakeIMDS) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path)
	if f.forbid {
		http.Error(w, "", http.StatusForbidden)
		return
	}
	if r.URL.Path == "/latest/api/token" {
		if r.Method != http.MethodPut || r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") == "" {
			http.Error(w, "", http.StatusBadRequest)
			return
		}
		if f.refuse > 0 {
			f.refuse--
			http.Error(w, "", http.StatusServiceUnavailable)
			return
		}
		f.tokenSeen++
		w.Write([]byte(fakeToken))
		return
	}
	if r.Header.Get("X-aws-ec2-metadata-token") != fakeToken {
		http.Error(w, "", http.StatusUnauthorized)
		return
	}
	body, ok := f.items[strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/latest/"), "/")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Write([]byte(body))
}
