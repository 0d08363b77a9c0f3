package image

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	goruntime "runtime"
	"sort"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeIMDS is an instance metadata service as cloud-init and nubo-init
// read EC2's: IMDSv2 tokens (required, as with HttpTokens=required: both
// images must ask with one), /latest/ and dated versions, directory
// listings ("dir/" for subdirectories, public-keys/ as "0=name"),
// user-data.
type fakeIMDS struct {
	mu       sync.Mutex
	items    map[string]string // below the version, e.g. meta-data/instance-id
	userData string
	requests []string
}

func (f *fakeIMDS) set(path, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.items[path] = value
}

func (f *fakeIMDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path)
	if r.URL.Path == "/latest/api/token" {
		if r.Method != http.MethodPut {
			http.Error(w, "", http.StatusMethodNotAllowed)
			return
		}
		w.Write([]byte("fake-token"))
		return
	}
	if r.Header.Get("X-aws-ec2-metadata-token") != "fake-token" {
		http.Error(w, "", http.StatusUnauthorized)
		return
	}
	parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 2)
	if len(parts) < 2 || (parts[0] != "latest" && len(parts[0]) != 10) {
		http.NotFound(w, r)
		return
	}
	p := strings.TrimSuffix(parts[1], "/")
	if p == "user-data" {
		if f.userData == "" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(f.userData))
		return
	}
	if v, ok := f.items[p]; ok {
		w.Write([]byte(v))
		return
	}
	// A directory: the names below it.
	seen := map[string]bool{}
	for k := range f.items {
		rest, ok := strings.CutPrefix(k, p+"/")
		if p == "" {
			rest, ok = k, true
		}
		if !ok {
			continue
		}
		name, _, deeper := strings.Cut(rest, "/")
		if p == "meta-data/public-keys" {
			name = "0=" + strings.Fields(f.items["meta-data/public-keys/0/openssh-key"])[2]
		} else if deeper {
			name += "/"
		}
		seen[name] = true
	}
	if len(seen) == 0 {
		http.NotFound(w, r)
		return
	}
	var names []string
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	w.Write([]byte(strings.Join(names, "\n")))
}

// imdsNetns makes a network namespace whose loopback also holds
// 169.254.169.254, where f answers on port 80, as nubo's metadata service
// answers in each VPC. It returns the namespace's path; everything is
// removed when the test ends.
func imdsNetns(t *testing.T, f *fakeIMDS) string {
	t.Helper()
	name := "nubo-imgtest-" + strings.ToLower(t.Name()[:min(len(t.Name()), 8)]) + "-" + randHex(3)
	for _, args := range [][]string{
		{"netns", "add", name},
		{"-n", name, "link", "set", "lo", "up"},
		{"-n", name, "addr", "add", "169.254.169.254/32", "dev", "lo"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	path := "/run/netns/" + name
	var ln net.Listener
	errc := make(chan error, 1)
	go func() {
		// This thread enters the namespace to open the listener; it is
		// never unlocked, so the Go runtime ends it rather than reuse it.
		goruntime.LockOSThread()
		ns, err := os.Open(path)
		if err != nil {
			errc <- err
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		ln, err = net.Listen("tcp", "169.254.169.254:80")
		errc <- err
	}()
	if err := <-errc; err != nil {
		t.Fatalf("metadata service in %s: %v", name, err)
	}
	srv := &http.Server{Handler: f}
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	return path
}
