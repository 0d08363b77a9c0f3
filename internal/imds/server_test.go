package imds

import (
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"nubo/internal/api/eic"
	"nubo/internal/instance"
	"nubo/internal/resource"
	"nubo/internal/store"
	"nubo/internal/store/storetest"
	"nubo/internal/vpc"
)

const (
	account = "123456789012"
	region  = "us-east-1"
)

// clock is a settable Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// env is a metadata server on 127.0.0.1 over a real store, whose one
// instance (in the account's default VPC) every connection is taken for.
type env struct {
	s     *Server
	st    *store.Store
	url   string
	clock *clock
	in    instance.Instance
	key   string // the instance's record
	conns chan net.Conn
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st := storetest.New(t)
	ctx := context.Background()
	vpcs := &vpc.Service{Store: st, Region: region, Zones: []vpc.Zone{{Name: "us-east-1a", ID: "use1-az1"}}}
	v, err := vpcs.DefaultVPC(ctx, account)
	if err != nil {
		t.Fatal(err)
	}
	sns, err := vpcs.Subnets(ctx, account)
	if err != nil || len(sns) == 0 {
		t.Fatal(sns, err)
	}
	sg, _, err := vpcs.DefaultSecurityGroup(ctx, account, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	launched := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	in := instance.Instance{
		Meta:            resource.Meta{ID: "i-0123456789abcdef0", Tags: map[string]string{"Name": "web", "env": "dev"}, CreateTime: launched},
		Account:         account,
		Region:          region,
		ReservationID:   "r-0123456789abcdef0",
		ImageID:         "ami-0123456789abcdef0",
		InstanceType:    "t3.micro",
		KeyName:         "laptop",
		PublicKey:       "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHhJd5s8dK0f2ZqzQbqVqXfE3n0i9S8p1a5l0Xb2Y3cZ",
		Zone:            sns[0].Zone,
		State:           instance.Running,
		Desired:         instance.Running,
		LaunchTime:      launched,
		VPCID:           v.ID,
		SubnetID:        sns[0].ID,
		PrivateIP:       "172.31.0.10",
		PublicIP:        "198.18.0.7",
		MAC:             "0e:11:22:33:44:55",
		SecurityGroups:  []string{sg.ID},
		RootVolumeID:    "vol-0123456789abcdef0",
		RootDevice:      "/dev/xvda",
		Hostname:        "ip-172-31-0-10",
		MetadataOptions: instance.DefaultMetadataOptions,
	}
	key := instance.Key(account, region, in.ID)
	if err := st.Apply(ctx, store.Op{Key: key, Value: in}); err != nil {
		t.Fatal(err)
	}
	id, err := LoadIdentity(ctx, st, region)
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	e := &env{st: st, clock: c, in: in, key: key, conns: make(chan net.Conn, 16)}
	e.s = &Server{
		Store: st, Region: region, Secret: []byte("0123456789abcdef0123456789abcdef"), Identity: id, Now: c.Now,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Lookup: func(ctx context.Context, vpcID string, ip netip.Addr) (instance.Instance, error) {
			var in instance.Instance
			if vpcID != v.ID || ip != netip.MustParseAddr("127.0.0.1") {
				return in, ErrNoInstance
			}
			_, err := st.Get(ctx, key, &in)
			return in, err
		},
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.url = "http://" + ln.Addr().String()
	done := make(chan struct{})
	go func() { e.s.Serve(v.ID, &recordingListener{ln, e.conns}); close(done) }()
	t.Cleanup(func() { ln.Close(); <-done })
	return e
}

// recordingListener hands the test every connection the server accepts.
type recordingListener struct {
	net.Listener
	conns chan net.Conn
}

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		select {
		case l.conns <- c:
		default:
		}
	}
	return c, err
}

// modify changes the instance's record, as the API would.
func (e *env) modify(t *testing.T, f func(*instance.Instance)) {
	t.Helper()
	if _, err := store.Update(context.Background(), e.st, e.key, func(in *instance.Instance) error { f(in); return nil }); err != nil {
		t.Fatal(err)
	}
}

type reply struct {
	code   int
	body   string
	header http.Header
}

func (e *env) do(t *testing.T, method, path string, header map[string]string) reply {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, string(b), resp.Header}
}

func (e *env) get(t *testing.T, path string) reply { return e.do(t, "GET", path, nil) }

// value GETs path and fails unless it answers 200.
func (e *env) value(t *testing.T, path string) string {
	t.Helper()
	r := e.get(t, path)
	if r.code != 200 {
		t.Fatalf("GET %s: %d %s", path, r.code, r.body)
	}
	return r.body
}

func (e *env) token(t *testing.T, ttl string) string {
	t.Helper()
	r := e.do(t, "PUT", "/latest/api/token", map[string]string{TokenTTLHeader: ttl})
	if r.code != 200 {
		t.Fatalf("PUT token: %d %s", r.code, r.body)
	}
	return r.body
}

func wantCode(t *testing.T, r reply, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("want %d, got %d %s", code, r.code, r.body)
	}
	if code >= 400 && !strings.Contains(r.body, "<h1>"+strconv.Itoa(code)+" - "+http.StatusText(code)+"</h1>") {
		t.Fatalf("error page %q does not say %s", r.body, http.StatusText(code))
	}
	if r.header.Get("Server") != "EC2ws" {
		t.Fatalf("Server header %q", r.header.Get("Server"))
	}
}

func TestIMDSv1ServesTheTree(t *testing.T) {
	e := newEnv(t)
	in := e.in
	r := e.get(t, "/latest/meta-data/")
	wantCode(t, r, 200)
	if ct := r.header.Get("Content-Type"); ct != "text/plain" {
		t.Fatalf("Content-Type %q", ct)
	}
	want := "ami-id\nami-launch-index\nami-manifest-path\nblock-device-mapping/\nhostname\ninstance-action\ninstance-id\n" +
		"instance-life-cycle\ninstance-type\nlocal-hostname\nlocal-ipv4\nmac\nmanaged-ssh-keys/\nnetwork/\nplacement/\n" +
		"public-hostname\npublic-ipv4\npublic-keys/\nreservation-id\nsecurity-groups\nservices/"
	if r.body != want {
		t.Fatalf("meta-data/ lists\n%s\nwant\n%s", r.body, want)
	}
	if e.value(t, "/latest/meta-data") != want {
		t.Fatal("meta-data without a slash differs")
	}
	mac := "/latest/meta-data/network/interfaces/macs/" + in.MAC + "/"
	sn, _ := (&vpc.Service{Store: e.st, Region: region}).GetSubnet(context.Background(), account, in.SubnetID)
	for path, want := range map[string]string{
		"/":                                   strings.Join(append(Versions[:len(Versions):len(Versions)], "latest"), "\n"),
		"/latest/":                            "dynamic\nmeta-data",
		"/latest/meta-data/ami-id":            in.ImageID,
		"/latest/meta-data/ami-launch-index":  "0",
		"/latest/meta-data/ami-manifest-path": "(unknown)",
		"/latest/meta-data/block-device-mapping/":          "ami\nroot",
		"/latest/meta-data/block-device-mapping/root":      "/dev/xvda",
		"/latest/meta-data/hostname":                       "ip-172-31-0-10.ec2.internal",
		"/latest/meta-data/local-hostname":                 "ip-172-31-0-10.ec2.internal",
		"/latest/meta-data/instance-action":                "none",
		"/latest/meta-data/instance-id":                    in.ID,
		"/latest/meta-data/instance-id/":                   in.ID,
		"/latest/meta-data/instance-life-cycle":            "on-demand",
		"/latest/meta-data/instance-type":                  "t3.micro",
		"/latest/meta-data/local-ipv4":                     "172.31.0.10",
		"/latest/meta-data/mac":                            in.MAC,
		"/latest/meta-data/public-ipv4":                    "198.18.0.7",
		"/latest/meta-data/public-hostname":                "ec2-198-18-0-7.compute-1.amazonaws.com",
		"/latest/meta-data/public-keys/":                   "0=laptop",
		"/latest/meta-data/public-keys/0/":                 "openssh-key",
		"/latest/meta-data/public-keys/0/openssh-key":      in.PublicKey + " laptop\n",
		"/latest/meta-data/reservation-id":                 in.ReservationID,
		"/latest/meta-data/security-groups":                "default",
		"/latest/meta-data/services/":                      "domain\npartition",
		"/latest/meta-data/services/domain":                "amazonaws.com",
		"/latest/meta-data/services/partition":             "aws",
		"/latest/meta-data/placement/":                     "availability-zone\navailability-zone-id\nregion",
		"/latest/meta-data/placement/availability-zone":    "us-east-1a",
		"/latest/meta-data/placement/availability-zone-id": "use1-az1",
		"/latest/meta-data/placement/region":               region,
		"/latest/meta-data/network/interfaces/macs/":       in.MAC + "/",
		mac: "device-number\nipv4-associations/\nlocal-hostname\nlocal-ipv4s\nmac\nowner-id\npublic-hostname\npublic-ipv4s\n" +
			"security-group-ids\nsecurity-groups\nsubnet-id\nsubnet-ipv4-cidr-block\nvpc-id\nvpc-ipv4-cidr-block\nvpc-ipv4-cidr-blocks",
		mac + "device-number":                 "0",
		mac + "ipv4-associations/198.18.0.7":  "172.31.0.10",
		mac + "local-ipv4s":                   "172.31.0.10",
		mac + "owner-id":                      account,
		mac + "public-ipv4s":                  "198.18.0.7",
		mac + "security-group-ids":            in.SecurityGroups[0],
		mac + "security-groups":               "default",
		mac + "subnet-id":                     in.SubnetID,
		mac + "subnet-ipv4-cidr-block":        sn.CIDR,
		mac + "vpc-id":                        in.VPCID,
		mac + "vpc-ipv4-cidr-block":           "172.31.0.0/16",
		mac + "vpc-ipv4-cidr-blocks":          "172.31.0.0/16",
		"/2021-03-23/meta-data/instance-id":   in.ID,
		"/2009-04-04/meta-data/local-ipv4":    "172.31.0.10",
		"/latest/dynamic/":                    "instance-identity/",
		"/latest/dynamic/instance-identity/":  "document\npkcs7\nrsa2048\nsignature",
		"/latest/meta-data/managed-ssh-keys/": "active-keys/",
	} {
		if got := e.value(t, path); got != want {
			t.Errorf("GET %s = %q, want %q", path, got, want)
		}
	}
	for _, path := range []string{"/latest/meta-data/nothing", "/latest/meta-data/instance-id/x", "/latest/user-data",
		"/latest/meta-data/tags/instance", "/nope/meta-data/", "/latest/meta-data/public-keys/1/", "/latest/meta-data//instance-id"} {
		r := e.get(t, path)
		wantCode(t, r, 404)
		if !strings.Contains(r.body, "<title>404 - Not Found</title>") || r.header.Get("Content-Type") != "text/html" {
			t.Fatalf("GET %s: %q (%s)", path, r.body, r.header.Get("Content-Type"))
		}
	}
	// Values are live: the record's change shows at the next request.
	e.modify(t, func(in *instance.Instance) { in.InstanceType = "t3.large"; in.PublicIP = "" })
	if got := e.value(t, "/latest/meta-data/instance-type"); got != "t3.large" {
		t.Fatalf("instance-type after a change: %q", got)
	}
	wantCode(t, e.get(t, "/latest/meta-data/public-ipv4"), 404)
	if got := e.value(t, "/latest/meta-data/"); strings.Contains(got, "public-") && !strings.Contains(got, "public-keys/") {
		t.Fatalf("listing without a public address: %q", got)
	}
	wantCode(t, e.do(t, "POST", "/latest/meta-data/", nil), 405)
}

func TestUserData(t *testing.T) {
	e := newEnv(t)
	raw := "#!/bin/sh\necho hi\n\x00\xff"
	e.modify(t, func(in *instance.Instance) { in.UserData = base64.StdEncoding.EncodeToString([]byte(raw)) })
	r := e.get(t, "/latest/user-data")
	wantCode(t, r, 200)
	if r.body != raw || r.header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("user-data %q (%s)", r.body, r.header.Get("Content-Type"))
	}
	if got := e.value(t, "/latest/"); got != "dynamic\nmeta-data\nuser-data" {
		t.Fatalf("/latest/ with user data lists %q", got)
	}
}

func TestIMDSv2Tokens(t *testing.T) {
	e := newEnv(t)
	for _, ttl := range []string{"", "0", "-1", "21601", "ten"} {
		h := map[string]string{}
		if ttl != "" {
			h[TokenTTLHeader] = ttl
		}
		wantCode(t, e.do(t, "PUT", "/latest/api/token", h), 400)
	}
	wantCode(t, e.do(t, "PUT", "/latest/api/token", map[string]string{TokenTTLHeader: "60", "X-Forwarded-For": "10.0.0.1"}), 403)
	wantCode(t, e.do(t, "GET", "/latest/api/token", nil), 405)

	r := e.do(t, "PUT", "/latest/api/token", map[string]string{TokenTTLHeader: "21600"})
	wantCode(t, r, 200)
	if r.header.Get(TokenTTLHeader) != "21600" || r.header.Get("Content-Type") != "text/plain" || r.body == "" {
		t.Fatalf("token reply %+v", r)
	}
	tok := e.token(t, "60")
	r = e.do(t, "GET", "/latest/meta-data/instance-id", map[string]string{TokenHeader: tok})
	wantCode(t, r, 200)
	if r.body != e.in.ID || r.header.Get(TokenTTLHeader) != "60" {
		t.Fatalf("with a token: %q, ttl %q", r.body, r.header.Get(TokenTTLHeader))
	}
	e.clock.Add(59 * time.Second)
	wantCode(t, e.do(t, "GET", "/latest/meta-data/instance-id", map[string]string{TokenHeader: tok}), 200)
	e.clock.Add(time.Second)
	wantCode(t, e.do(t, "GET", "/latest/meta-data/instance-id", map[string]string{TokenHeader: tok}), 401) // expired

	// A forged token, another instance's, or a tampered one: 401, even
	// though IMDSv1 is allowed.
	other := newToken(e.s.Secret, "i-0fedcba9876543210", e.clock.Now().Add(time.Hour))
	forged := newToken([]byte("another secret, not the deployment's"), e.in.ID, e.clock.Now().Add(time.Hour))
	for _, bad := range []string{"nonsense", other, forged} {
		wantCode(t, e.do(t, "GET", "/latest/meta-data/instance-id", map[string]string{TokenHeader: bad}), 401)
	}
	wantCode(t, e.get(t, "/latest/meta-data/instance-id"), 200) // IMDSv1

	// HttpTokens required: no token, no metadata.
	e.modify(t, func(in *instance.Instance) { in.MetadataOptions.HTTPTokens = "required" })
	r = e.get(t, "/latest/meta-data/instance-id")
	wantCode(t, r, 401)
	if !strings.Contains(r.body, "401 - Unauthorized") {
		t.Fatalf("401 page %q", r.body)
	}
	wantCode(t, e.get(t, "/latest/user-data"), 401)
	tok = e.token(t, "30")
	wantCode(t, e.do(t, "GET", "/latest/meta-data/instance-id", map[string]string{TokenHeader: tok}), 200)
}

func TestEndpointDisabled(t *testing.T) {
	e := newEnv(t)
	tok := e.token(t, "600")
	e.modify(t, func(in *instance.Instance) { in.MetadataOptions.HTTPEndpoint = "disabled" })
	wantCode(t, e.get(t, "/latest/meta-data/"), 403)
	wantCode(t, e.do(t, "GET", "/latest/meta-data/", map[string]string{TokenHeader: tok}), 403)
	wantCode(t, e.do(t, "PUT", "/latest/api/token", map[string]string{TokenTTLHeader: "60"}), 403)
	e.modify(t, func(in *instance.Instance) { in.MetadataOptions.HTTPEndpoint = "enabled" })
	wantCode(t, e.get(t, "/latest/meta-data/"), 200)
}

func TestUnknownCallerIsRefused(t *testing.T) {
	e := newEnv(t)
	e.s.Lookup = func(context.Context, string, netip.Addr) (instance.Instance, error) {
		return instance.Instance{}, ErrNoInstance
	}
	wantCode(t, e.get(t, "/latest/meta-data/"), 403)
}

func TestTags(t *testing.T) {
	e := newEnv(t)
	if strings.Contains(e.value(t, "/latest/meta-data/"), "tags") {
		t.Fatal("tags listed while InstanceMetadataTags is disabled")
	}
	wantCode(t, e.get(t, "/latest/meta-data/tags/instance/Name"), 404)
	e.modify(t, func(in *instance.Instance) { in.MetadataOptions.InstanceMetadataTags = "enabled" })
	if !strings.Contains(e.value(t, "/latest/meta-data/"), "\ntags/") {
		t.Fatal("tags/ not listed")
	}
	if got := e.value(t, "/latest/meta-data/tags/instance"); got != "Name\nenv" {
		t.Fatalf("tags/instance lists %q", got)
	}
	if got := e.value(t, "/latest/meta-data/tags/instance/Name"); got != "web" {
		t.Fatalf("Name tag %q", got)
	}
	wantCode(t, e.get(t, "/latest/meta-data/tags/instance/nope"), 404)
}

func TestManagedSSHKeysExpire(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	now := e.clock.Now()
	put := func(user, id, key string, expires time.Time) {
		t.Helper()
		rec := eic.Record{PublicKey: key, Expires: expires.UTC().Format(time.RFC3339)}
		if err := e.st.Apply(ctx, store.Op{Key: eic.Prefix(account, region, e.in.ID, user) + id, Value: rec, ModRev: -1}); err != nil {
			t.Fatal(err)
		}
	}
	put("ubuntu", "a", "ssh-ed25519 AAAA1 a", now.Add(60*time.Second))
	put("ubuntu", "b", "ssh-ed25519 AAAA2 b", now.Add(30*time.Second))
	put("ubuntu", "c", "ssh-ed25519 AAAA3 c", now.Add(-time.Second)) // expired
	put("root", "d", "ssh-ed25519 AAAA4 d", now)                     // expires now
	if got := e.value(t, "/latest/meta-data/managed-ssh-keys/active-keys/"); got != "ubuntu" {
		t.Fatalf("active-keys/ lists %q", got)
	}
	if got := e.value(t, "/latest/meta-data/managed-ssh-keys/active-keys/ubuntu/"); got != "ssh-ed25519 AAAA2 b\nssh-ed25519 AAAA1 a\n" {
		t.Fatalf("ubuntu's keys %q", got)
	}
	wantCode(t, e.get(t, "/latest/meta-data/managed-ssh-keys/active-keys/root"), 404)
	e.clock.Add(45 * time.Second)
	if got := e.value(t, "/latest/meta-data/managed-ssh-keys/active-keys/ubuntu"); got != "ssh-ed25519 AAAA1 a\n" {
		t.Fatalf("ubuntu's keys later %q", got)
	}
	e.clock.Add(time.Minute)
	wantCode(t, e.get(t, "/latest/meta-data/managed-ssh-keys/active-keys/ubuntu"), 404)
}
