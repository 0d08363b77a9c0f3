package e2e

import (
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"nubo/internal/network/netns"
	"nubo/internal/nubotest"
)

// imdsClient talks to 169.254.169.254 from inside an instance's network
// namespace, as a process of the instance would.
type imdsClient struct {
	t *testing.T
	c http.Client
}

func newIMDSClient(t *testing.T, srv *nubotest.Server, id string) *imdsClient {
	ns := netnsOf(t, srv, id)
	return &imdsClient{t, http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return netns.Dial(ctx, ns, nil, "tcp4", addr)
		}}}}
}

// do sends a request and returns the status and body.
func (m *imdsClient) do(method, path string, headers ...string) (int, string) {
	m.t.Helper()
	req, _ := http.NewRequest(method, "http://169.254.169.254"+path, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := m.c.Do(req)
	if err != nil {
		m.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (m *imdsClient) token(ttl string) string {
	m.t.Helper()
	code, tok := m.do("PUT", "/latest/api/token", "X-aws-ec2-metadata-token-ttl-seconds", ttl)
	if code != 200 || tok == "" {
		m.t.Fatalf("token (ttl %s): %d %q", ttl, code, tok)
	}
	return tok
}

// TestMetadataService: the metadata service as an instance sees it —
// IMDSv1 and v2, HttpTokens required (401 without a token), token TTL
// bounds and expiry, the endpoint disabled (403), instance tags when
// enabled, live values, and user data that changes while stopped shows but
// does not run again.
func TestMetadataService(t *testing.T) {
	srv, c, image := startWithImages(t)
	script := "#!/bin/sh\necho ran >> /var/tmp/ran\n"
	out, err := c.RunInstances(ctx(t), &ec2.RunInstancesInput{ImageId: aws.String(image), InstanceType: types.InstanceTypeT3Nano,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), UserData: aws.String(base64.StdEncoding.EncodeToString([]byte(script))),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("meta")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	waitState(t, c, "running", id)
	in := describeOne(t, c, id)
	m := newIMDSClient(t, srv, id)

	for path, want := range map[string]string{
		"/latest/meta-data/instance-id":                 id,
		"/latest/meta-data/local-ipv4":                  aws.ToString(in.PrivateIpAddress),
		"/latest/meta-data/public-ipv4":                 aws.ToString(in.PublicIpAddress),
		"/latest/meta-data/placement/availability-zone": aws.ToString(in.Placement.AvailabilityZone),
		"/latest/meta-data/security-groups":             "default",
		"/latest/user-data":                             script,
	} {
		if code, got := m.do("GET", path); code != 200 || got != want {
			t.Errorf("IMDSv1 GET %s: %d %q, want %q", path, code, got, want)
		}
	}
	tok := m.token("21600")
	if code, got := m.do("GET", "/latest/meta-data/instance-id", "X-aws-ec2-metadata-token", tok); code != 200 || got != id {
		t.Errorf("IMDSv2 GET instance-id: %d %q", code, got)
	}
	for _, ttl := range []string{"0", "21601", ""} {
		if code, _ := m.do("PUT", "/latest/api/token", "X-aws-ec2-metadata-token-ttl-seconds", ttl); code != 400 {
			t.Errorf("token with TTL %q: %d, want 400", ttl, code)
		}
	}
	if code, _ := m.do("GET", "/latest/meta-data/tags/instance/Name"); code != 404 {
		t.Errorf("tags while InstanceMetadataTags is disabled: %d, want 404", code)
	}

	modify := func(in *ec2.ModifyInstanceMetadataOptionsInput) {
		t.Helper()
		in.InstanceId = aws.String(id)
		if _, err := c.ModifyInstanceMetadataOptions(ctx(t), in); err != nil {
			t.Fatal(err)
		}
	}
	modify(&ec2.ModifyInstanceMetadataOptionsInput{HttpTokens: types.HttpTokensStateRequired, InstanceMetadataTags: types.InstanceMetadataTagsStateEnabled})
	if code, _ := m.do("GET", "/latest/meta-data/instance-id"); code != 401 {
		t.Errorf("IMDSv1 with HttpTokens required: %d, want 401", code)
	}
	short := m.token("1")
	if code, got := m.do("GET", "/latest/meta-data/tags/instance/Name", "X-aws-ec2-metadata-token", short); code != 200 || got != "meta" {
		t.Errorf("tag Name with a token: %d %q", code, got)
	}
	time.Sleep(2 * time.Second)
	if code, _ := m.do("GET", "/latest/meta-data/instance-id", "X-aws-ec2-metadata-token", short); code != 401 {
		t.Errorf("an expired token: %d, want 401", code)
	}
	modify(&ec2.ModifyInstanceMetadataOptionsInput{HttpEndpoint: types.InstanceMetadataEndpointStateDisabled})
	if code, _ := m.do("GET", "/latest/meta-data/instance-id", "X-aws-ec2-metadata-token", tok); code != 403 {
		t.Errorf("endpoint disabled: %d, want 403", code)
	}
	modify(&ec2.ModifyInstanceMetadataOptionsInput{HttpEndpoint: types.InstanceMetadataEndpointStateEnabled, HttpTokens: types.HttpTokensStateOptional})

	// User data changed while stopped: the service shows it, it does not run.
	waitFile := func(want string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			got := inside(t, srv, id, "cat /var/tmp/ran 2>/dev/null || true")
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("/var/tmp/ran: %q, want %q", got, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFile("ran")
	if _, err := c.StopInstances(ctx(t), &ec2.StopInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "stopped", id)
	changed := "#!/bin/sh\necho changed >> /var/tmp/ran\n"
	if _, err := c.ModifyInstanceAttribute(ctx(t), &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(id),
		UserData: &types.SecureBlobAttributeValue{Value: []byte(changed)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartInstances(ctx(t), &ec2.StartInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "running", id)
	m = newIMDSClient(t, srv, id)
	if code, got := m.do("GET", "/latest/user-data"); code != 200 || got != changed {
		t.Errorf("user data after the change: %d %q", code, got)
	}
	restarted := describeOne(t, c, id)
	if code, got := m.do("GET", "/latest/meta-data/public-ipv4"); code != 200 || got != aws.ToString(restarted.PublicIpAddress) {
		t.Errorf("public-ipv4 after stop/start: %d %q, want %s (live)", code, got, aws.ToString(restarted.PublicIpAddress))
	}
	time.Sleep(time.Second)
	if got := inside(t, srv, id, "cat /var/tmp/ran"); strings.TrimSpace(got) != "ran" {
		t.Errorf("user data ran again after stop/start: %q", got)
	}
}
