package linux_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"nubo/internal/network/linux"
	"nubo/internal/network/netns"
)

// Instances reach 169.254.169.254:80 in their VPC's router, whatever their
// security groups, and the service sees each one's own private address.
func TestMetadataListener(t *testing.T) {
	d := newDriverWith(t, func(c *linux.Config) {
		c.Metadata = func(vpcID string, ln net.Listener) {
			http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				host, _, _ := net.SplitHostPort(r.RemoteAddr)
				io.WriteString(w, vpcID+" "+host)
			}))
		}
	})
	n := net10{t, d}
	n.vpc("vpc-a", "10.0.0.0/16")
	n.subnet("vpc-a", "subnet-1", "10.0.1.0/24", false)
	n.vpc("vpc-b", "10.0.0.0/16")
	n.subnet("vpc-b", "subnet-2", "10.0.1.0/24", false)
	a := n.attachClosed("vpc-a", "subnet-1", "i-a", "10.0.1.10/24") // no security group lets anything through
	b := n.attach("vpc-b", "subnet-2", "i-b", "10.0.1.10/24")
	for path, want := range map[string]string{a: "vpc-a 10.0.1.10", b: "vpc-b 10.0.1.10"} {
		if got := getFrom(t, path, "http://169.254.169.254/"); got != want {
			t.Errorf("from %s: %q, want %q", path, got, want)
		}
	}
}

func getFrom(t *testing.T, nsPath, url string) string {
	t.Helper()
	c := http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return netns.Dial(ctx, nsPath, nil, "tcp4", addr)
		},
	}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s from %s: %v", url, nsPath, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
