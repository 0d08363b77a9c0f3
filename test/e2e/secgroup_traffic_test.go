package e2e

import (
	"fmt"
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
	"nubo/internal/network/networktest"
	"nubo/internal/nubotest"
)

// serveHTTP answers "hello from <name>" on addr inside the instance's
// network namespace.
func serveHTTP(t *testing.T, srv *nubotest.Server, id, name, addr string) {
	t.Helper()
	ln, err := netns.Listen(netnsOf(t, srv, id), "tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "hello from "+name) })}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
}

func netnsOf(t *testing.T, srv *nubotest.Server, id string) string {
	return "/proc/" + mustPID(t, srv, id) + "/ns/net"
}

func httpGet(url string) string {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// eventually probes until want or the deadline and says how long it took.
func eventually(t *testing.T, what string, probe func() networktest.Outcome, want networktest.Outcome) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		got := probe()
		if got == want {
			return time.Since(start)
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("%s: %s, want %s", what, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func tcpProbe(t *testing.T, nsPath, addr string) func() networktest.Outcome {
	return func() networktest.Outcome {
		o, err := networktest.ProbeTCP(nsPath, addr, 300*time.Millisecond)
		if err != nil {
			t.Fatalf("probe %s: %v", addr, err)
		}
		return o
	}
}

// TestSecurityGroupsEnforced: the classic demonstration and the group
// semantics, with real traffic through nubo serve.
//   - a group opening 22 and 80 to the world: ssh and HTTP to the public IP
//     work from the host, 443 (no rule) times out, 8081 (a rule, nothing
//     listening) is refused;
//   - a rule added on the running instance opens 443, a revoke closes it;
//   - a rule naming a group follows its membership (ModifyInstanceAttribute);
//   - the default group lets its members talk to each other, nobody else.
func TestSecurityGroupsEnforced(t *testing.T) {
	srv, c, image := startWithImages(t)
	create := func(name string) string {
		g, err := c.CreateSecurityGroup(ctx(t), &ec2.CreateSecurityGroupInput{GroupName: aws.String(name), Description: aws.String(name + " servers")})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(g.GroupId)
	}
	web, clients := create("web"), create("clients")
	anywhere := []types.IpRange{{CidrIp: aws.String("0.0.0.0/0")}}
	tcpFrom := func(port int32) types.IpPermission {
		return types.IpPermission{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(port), ToPort: aws.Int32(port), IpRanges: anywhere}
	}
	if _, err := c.AuthorizeSecurityGroupIngress(ctx(t), &ec2.AuthorizeSecurityGroupIngressInput{GroupId: aws.String(web),
		IpPermissions: []types.IpPermission{tcpFrom(22), tcpFrom(80), tcpFrom(8081), {IpProtocol: aws.String("tcp"),
			FromPort: aws.Int32(8080), ToPort: aws.Int32(8080), UserIdGroupPairs: []types.UserIdGroupPair{{GroupId: aws.String(clients)}}}}}); err != nil {
		t.Fatal(err)
	}
	launch := func(groups ...string) (string, types.Instance) {
		out, err := c.RunInstances(ctx(t), &ec2.RunInstancesInput{ImageId: aws.String(image), InstanceType: types.InstanceTypeT3Nano,
			MinCount: aws.Int32(1), MaxCount: aws.Int32(1), SecurityGroupIds: groups})
		if err != nil {
			t.Fatal(err)
		}
		id := aws.ToString(out.Instances[0].InstanceId)
		waitState(t, c, "running", id)
		return id, describeOne(t, c, id)
	}
	a, ia := launch(web)
	b, ib := launch() // the default group
	d, _ := launch()  // the default group
	pub, priv := aws.ToString(ia.PublicIpAddress), aws.ToString(ia.PrivateIpAddress)
	serveHTTP(t, srv, a, "a", "0.0.0.0:80")
	serveHTTP(t, srv, a, "a", "0.0.0.0:443")
	serveHTTP(t, srv, a, "a", "0.0.0.0:8080")

	if got := sshBanner(pub); !strings.HasPrefix(got, "SSH-2.0-OpenSSH") {
		t.Errorf("ssh to %s: %q", pub, got)
	}
	if got := httpGet("http://" + pub + "/"); got != "hello from a" {
		t.Errorf("HTTP to %s:80: %q", pub, got)
	}
	for port, want := range map[string]networktest.Outcome{"443": networktest.Timeout, "8081": networktest.Refused, "8080": networktest.Timeout} {
		if got := tcpProbe(t, "", net.JoinHostPort(pub, port))(); got != want {
			t.Errorf("the host → %s:%s: %s, want %s", pub, port, got, want)
		}
	}

	// A rule added to the running instance's group opens 443; revoking it
	// closes it again.
	p443 := []types.IpPermission{tcpFrom(443)}
	if _, err := c.AuthorizeSecurityGroupIngress(ctx(t), &ec2.AuthorizeSecurityGroupIngressInput{GroupId: aws.String(web), IpPermissions: p443}); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, "443 after authorize", tcpProbe(t, "", pub+":443"), networktest.Open)
	t.Logf("authorize → 443 open: %v", took)
	if _, err := c.RevokeSecurityGroupIngress(ctx(t), &ec2.RevokeSecurityGroupIngressInput{GroupId: aws.String(web), IpPermissions: p443}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "443 after revoke", tcpProbe(t, "", pub+":443"), networktest.Timeout)

	// 8080 is open to members of "clients": b is not one until it joins.
	fromB := tcpProbe(t, netnsOf(t, srv, b), priv+":8080")
	if got := fromB(); got != networktest.Timeout {
		t.Errorf("b (not in clients) → a:8080: %s", got)
	}
	def := aws.ToString(ib.SecurityGroups[0].GroupId)
	if _, err := c.ModifyInstanceAttribute(ctx(t), &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(b), Groups: []string{def, clients}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b → a:8080 once b is in clients", fromB, networktest.Open)

	// The default group: b and d (members) reach each other's sshd; a (not
	// a member) reaches neither.
	bPriv := aws.ToString(ib.PrivateIpAddress)
	if got := tcpProbe(t, netnsOf(t, srv, d), bPriv+":22")(); got != networktest.Open {
		t.Errorf("d → b:22 (both in the default group): %s", got)
	}
	if got := tcpProbe(t, netnsOf(t, srv, a), bPriv+":22")(); got != networktest.Timeout {
		t.Errorf("a → b:22 (a not in the default group): %s", got)
	}
}
