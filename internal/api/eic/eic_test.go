package eic_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2instanceconnect"
	"github.com/aws/aws-sdk-go-v2/service/ec2instanceconnect/types"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/crypto/ssh"

	"nubo/internal/api/ec2query"
	"nubo/internal/api/eic"
	"nubo/internal/instance"
	"nubo/internal/resource"
	"nubo/internal/store"
	"nubo/internal/store/storetest"
)

const (
	region    = "us-east-1"
	accessKey = "AKIAIOSFODNN7EXAMPLE"
	secret    = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	account   = "123456789012"
	other     = "210987654321" // another account, with its own instance

	running = "i-0123456789abcdef0"
	stopped = "i-0123456789abcdef1"
	pending = "i-0123456789abcdef2"
	foreign = "i-0123456789abcdef3" // other's
	unknown = "i-0fedcba9876543210"
)

type fixture struct {
	st     *store.Store
	srv    *httptest.Server
	client *ec2instanceconnect.Client
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{st: storetest.New(t)}
	ctx := context.Background()
	for _, in := range []instance.Instance{
		{Meta: resource.Meta{ID: running}, Account: account, Region: region, Zone: "us-east-1a", State: instance.Running},
		{Meta: resource.Meta{ID: stopped}, Account: account, Region: region, Zone: "us-east-1a", State: instance.Stopped},
		{Meta: resource.Meta{ID: pending}, Account: account, Region: region, Zone: "us-east-1a", State: instance.Pending},
		{Meta: resource.Meta{ID: foreign}, Account: other, Region: region, Zone: "us-east-1a", State: instance.Running},
	} {
		if err := f.st.Create(ctx, map[string]any{instance.Key(in.Account, in.Region, in.ID): in}); err != nil {
			t.Fatal(err)
		}
	}
	h := &eic.Handler{
		Region:    region,
		Store:     f.st,
		Instances: &instance.Service{Store: f.st, Region: region},
		Lookup: func(ak string) (ec2query.Account, bool) {
			if ak == accessKey {
				return ec2query.Account{ID: account, Secret: secret}, true
			}
			return ec2query.Account{}, false
		},
	}
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	f.client = ec2instanceconnect.New(ec2instanceconnect.Options{
		Region:       region,
		BaseEndpoint: aws.String(f.srv.URL),
		Credentials:  credentials.NewStaticCredentialsProvider(accessKey, secret, ""),
		Retryer:      aws.NopRetryer{},
	})
	return f
}

func authorizedKey(t *testing.T, pub any, comment string) string {
	t.Helper()
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(k)), "\n")
	if comment != "" {
		line += " " + comment
	}
	return line
}

func ed25519Key(t *testing.T) string {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return authorizedKey(t, pub, "me@laptop")
}

func send(f *fixture, id, user, key string) (*ec2instanceconnect.SendSSHPublicKeyOutput, error) {
	return f.client.SendSSHPublicKey(context.Background(), &ec2instanceconnect.SendSSHPublicKeyInput{
		InstanceId: aws.String(id), InstanceOSUser: aws.String(user), SSHPublicKey: aws.String(key),
	})
}

func TestSendSSHPublicKey(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	key := ed25519Key(t)
	before := time.Now()
	out, err := send(f, running, "admin", key+"\n") // as read from a .pub file
	if err != nil {
		t.Fatal(err)
	}
	if !out.Success || aws.ToString(out.RequestId) == "" {
		t.Fatalf("got Success=%v RequestId=%q", out.Success, aws.ToString(out.RequestId))
	}

	resp, err := f.st.Client().Get(ctx, eic.Prefix(account, region, running, "admin"), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 {
		t.Fatalf("stored %d keys, want 1", len(resp.Kvs))
	}
	kv := resp.Kvs[0]
	if id := strings.TrimPrefix(string(kv.Key), "/nubo/v1/eic/"+account+"/"+region+"/"+running+"/admin/"); id == string(kv.Key) || id == "" || strings.Contains(id, "/") {
		t.Errorf("key %s is not below the user's prefix", kv.Key)
	}
	var rec map[string]string
	if err := json.Unmarshal(kv.Value, &rec); err != nil {
		t.Fatal(err)
	}
	if len(rec) != 2 || rec["publicKey"] != key {
		t.Errorf("stored %s, want publicKey %q and expires", kv.Value, key)
	}
	exp, err := time.Parse(time.RFC3339, rec["expires"])
	if err != nil || !strings.HasSuffix(rec["expires"], "Z") {
		t.Fatalf("expires %q is not RFC 3339 UTC: %v", rec["expires"], err)
	}
	if lo, hi := before.Add(eic.KeyLifetime), time.Now().Add(eic.KeyLifetime+time.Second); exp.Before(lo.Truncate(time.Second)) || exp.After(hi) {
		t.Errorf("expires %s, want 60 s after the call (%s – %s)", exp, lo, hi)
	}
	ttl, err := f.st.Client().TimeToLive(ctx, clientv3.LeaseID(kv.Lease))
	if err != nil {
		t.Fatal(err)
	}
	if ttl.GrantedTTL < 60 || ttl.GrantedTTL > 90 {
		t.Errorf("lease TTL %d s, want a little over 60", ttl.GrantedTTL)
	}

	got, err := eic.ActiveKeys(ctx, f.st, account, region, running, "admin", time.Now())
	if err != nil || len(got) != 1 || got[0] != key {
		t.Errorf("ActiveKeys now = %q, %v; want [%q]", got, err, key)
	}
	got, err = eic.ActiveKeys(ctx, f.st, account, region, running, "admin", exp)
	if err != nil || len(got) != 0 {
		t.Errorf("ActiveKeys at expiry = %q, %v; want none", got, err)
	}
	for _, user := range []string{"admi", "admin2", "root"} {
		if got, _ := eic.ActiveKeys(ctx, f.st, account, region, running, user, time.Now()); len(got) != 0 {
			t.Errorf("ActiveKeys(%s) = %q, want none", user, got)
		}
	}
}

func TestKeyTypes(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	var want []string
	for _, k := range []string{
		authorizedKey(t, &rsa2048.PublicKey, ""),
		authorizedKey(t, &p256.PublicKey, "p256"),
		authorizedKey(t, &p384.PublicKey, "p384"),
		authorizedKey(t, &p521.PublicKey, "a comment with spaces"),
		ed25519Key(t),
	} {
		if _, err := send(f, running, "ec2-user", k); err != nil {
			t.Errorf("%.20s…: %v", k, err)
		}
		want = append(want, k)
	}
	// The same key twice is listed once.
	if _, err := send(f, running, "ec2-user", want[0]); err != nil {
		t.Fatal(err)
	}
	got, err := eic.ActiveKeys(ctx, f.st, account, region, running, "ec2-user", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("ActiveKeys = %d keys, want %d", len(got), len(want))
	}
	for _, k := range want {
		found := false
		for _, g := range got {
			found = found || g == k
		}
		if !found {
			t.Errorf("ActiveKeys misses %.30s…", k)
		}
	}
}

func TestSendSSHPublicKeyErrors(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	key := ed25519Key(t)
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	var (
		invalidArgs  *types.InvalidArgsException
		notFound     *types.EC2InstanceNotFoundException
		stateInvalid *types.EC2InstanceStateInvalidException
	)
	for _, tc := range []struct {
		name          string
		id, user, key string
		zone          *string
		want          any
	}{
		{"unknown instance", unknown, "admin", key, nil, &notFound},
		{"another account's instance", foreign, "admin", key, nil, &notFound},
		{"short nubo-invalid id", "i-0123abcd0", "admin", key, nil, &notFound},
		{"stopped", stopped, "admin", key, nil, &stateInvalid},
		{"pending", pending, "admin", key, nil, &stateInvalid},
		{"malformed id", "instance-1", "admin", key, nil, &invalidArgs},
		{"upper-case id", "i-0123456789ABCDEF0", "admin", key, nil, &invalidArgs},
		{"user with a slash", running, "ad/min", key, nil, &invalidArgs},
		{"user starting with a dash", running, "-admin", key, nil, &invalidArgs},
		{"user too long", running, strings.Repeat("a", 33), key, nil, &invalidArgs},
		{"numeric user", running, "1000", key, nil, &invalidArgs},
		{"not a key", running, "admin", strings.Repeat("x", 100), nil, &invalidArgs},
		{"RSA 1024", running, "admin", authorizedKey(t, &rsa1024.PublicKey, ""), nil, &invalidArgs},
		{"options", running, "admin", `command="/bin/sh" ` + key, nil, &invalidArgs},
		{"two lines", running, "admin", key + "\n" + key, nil, &invalidArgs},
		{"too short", running, "admin", "ssh-ed25519 AAAA", nil, &invalidArgs},
		{"too long", running, "admin", key + " " + strings.Repeat("c", 4096), nil, &invalidArgs},
		{"other zone", running, "admin", key, aws.String("us-east-1b"), &invalidArgs},
		{"malformed zone", running, "admin", key, aws.String("zone-a"), &invalidArgs},
		{"zone of a stopped instance", stopped, "admin", key, aws.String("us-east-1a"), &stateInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.client.SendSSHPublicKey(ctx, &ec2instanceconnect.SendSSHPublicKeyInput{
				InstanceId: aws.String(tc.id), InstanceOSUser: aws.String(tc.user), SSHPublicKey: aws.String(tc.key),
				AvailabilityZone: tc.zone,
			})
			if err == nil || !errors.As(err, tc.want) {
				t.Fatalf("got %v, want %T", err, tc.want)
			}
		})
	}
	kvs, err := f.st.List(ctx, "/nubo/v1/eic/")
	if err != nil || len(kvs) != 0 {
		t.Errorf("failed calls stored %d keys (%v)", len(kvs), err)
	}
	if _, err := f.client.SendSSHPublicKey(ctx, &ec2instanceconnect.SendSSHPublicKeyInput{
		InstanceId: aws.String(running), InstanceOSUser: aws.String("admin"), SSHPublicKey: aws.String(key),
		AvailabilityZone: aws.String("us-east-1a"),
	}); err != nil {
		t.Errorf("with its own zone: %v", err)
	}
}

// post sends a raw JSON 1.1 call signed for service (unsigned if empty).
func post(t *testing.T, f *fixture, target, body, service, key string) (int, http.Header, map[string]any) {
	t.Helper()
	r, err := http.NewRequest(http.MethodPost, f.srv.URL+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/x-amz-json-1.1")
	r.Header.Set("X-Amz-Target", target)
	if service != "" {
		sum := sha256.Sum256([]byte(body))
		err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: key, SecretAccessKey: secret},
			r, hex.EncodeToString(sum[:]), service, region, time.Now())
		if err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("response %q is not JSON: %v", b, err)
	}
	return resp.StatusCode, resp.Header, doc
}

func TestProtocol(t *testing.T) {
	f := newFixture(t)
	const target = "AWSEC2InstanceConnectService.SendSSHPublicKey"
	body, _ := json.Marshal(map[string]string{"InstanceId": running, "InstanceOSUser": "admin", "SSHPublicKey": ed25519Key(t)})

	status, hdr, doc := post(t, f, target, string(body), "ec2-instance-connect", accessKey)
	if status != http.StatusOK || doc["Success"] != true || doc["RequestId"] == "" || len(doc) != 2 {
		t.Errorf("success: %d %v", status, doc)
	}
	if hdr.Get("Content-Type") != "application/x-amz-json-1.1" || hdr.Get("X-Amzn-RequestId") != doc["RequestId"] {
		t.Errorf("success headers: %v", hdr)
	}

	for _, tc := range []struct {
		name, target, body, service, key string
		status                           int
		code                             string
	}{
		{"signed for ec2", target, string(body), "ec2", accessKey, 400, "InvalidSignatureException"},
		{"unsigned", target, string(body), "", accessKey, 403, "MissingAuthenticationTokenException"},
		{"unknown access key", target, string(body), "ec2-instance-connect", "AKIANOTAKEY", 400, "UnrecognizedClientException"},
		{"unknown operation", "AWSEC2InstanceConnectService.SendSerialConsoleSSHPublicKey", string(body), "ec2-instance-connect", accessKey, 400, "UnknownOperationException"},
		{"not JSON", target, "{InstanceId", "ec2-instance-connect", accessKey, 400, "SerializationException"},
		{"missing user", target, `{"InstanceId":"` + running + `","SSHPublicKey":"x"}`, "ec2-instance-connect", accessKey, 400, "InvalidArgsException"},
		{"unknown instance", target, strings.Replace(string(body), running, unknown, 1), "ec2-instance-connect", accessKey, 404, "EC2InstanceNotFoundException"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, doc := post(t, f, tc.target, tc.body, tc.service, tc.key)
			if status != tc.status || doc["__type"] != tc.code || doc["Message"] == "" {
				t.Errorf("got %d %v, want %d %s", status, doc, tc.status, tc.code)
			}
		})
	}
}

func TestIsRequest(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(nil))
	if eic.IsRequest(r) {
		t.Error("an EC2 Query request is taken for EC2 Instance Connect")
	}
	r.Header.Set("X-Amz-Target", "AWSEC2InstanceConnectService.SendSSHPublicKey")
	if !eic.IsRequest(r) {
		t.Error("an EC2 Instance Connect request is not recognised")
	}
}
