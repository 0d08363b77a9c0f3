package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"nubo/internal/account"
)

func TestHealthz(t *testing.T) {
	srv, _ := start(t)
	resp, err := http.Get(srv.Endpoint + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}
}

func TestAuthFailures(t *testing.T) {
	srv, _ := start(t)
	cfg, err := srv.Config(nil)
	if err != nil {
		t.Fatal(err)
	}
	id := cfg.Credentials.(credentials.StaticCredentialsProvider).Value.AccessKeyID
	for name, creds := range map[string]aws.CredentialsProvider{
		"wrong secret": credentials.NewStaticCredentialsProvider(id, "not-the-secret", ""),
		"unknown key":  credentials.NewStaticCredentialsProvider("AKIAUNKNOWNUNKNOWN00", "whatever", ""),
	} {
		bad := cfg.Copy()
		bad.Credentials = creds
		_, err := ec2.NewFromConfig(bad).DescribeAvailabilityZones(ctx(t), &ec2.DescribeAvailabilityZonesInput{})
		t.Run(name, func(t *testing.T) { wantAPIError(t, err, "AuthFailure", 401) })
	}
	wrongRegion := cfg.Copy()
	wrongRegion.Region = "eu-west-1"
	_, err = ec2.NewFromConfig(wrongRegion).DescribeAvailabilityZones(ctx(t), &ec2.DescribeAvailabilityZonesInput{})
	wantAPIError(t, err, "AuthFailure", 401)

	// No signature at all.
	resp, err := http.Post(srv.Endpoint, "application/x-www-form-urlencoded", strings.NewReader("Action=DescribeRegions&Version=2016-11-15"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(string(body), "<Code>MissingAuthenticationToken</Code>") {
		t.Fatalf("unsigned request: %d %s", resp.StatusCode, body)
	}
}

// TestAccountsAreIsolated configures a second account: it sees none of the
// first account's resources, and may reuse its names.
func TestAccountsAreIsolated(t *testing.T) {
	dir := t.TempDir()
	second := account.Account{ID: "222233334444", Name: "second", AccessKeyID: "AKIASECONDACCOUNT000", SecretAccessKey: "second-secret"}
	set := account.Set{Accounts: []account.Account{
		{ID: "111122223333", Name: "first", AccessKeyID: "AKIAFIRSTACCOUNT0000", SecretAccessKey: "first-secret"}, second}}
	b, _ := json.Marshal(set)
	if err := os.WriteFile(filepath.Join(dir, account.FileName), b, 0o600); err != nil {
		t.Fatal(err)
	}
	srv, first := startIn(t, dir)
	cfg, err := srv.Config(&second)
	if err != nil {
		t.Fatal(err)
	}
	other := ec2.NewFromConfig(cfg)

	kp, err := first.CreateKeyPair(ctx(t), &ec2.CreateKeyPairInput{KeyName: aws.String("shared-name"), KeyType: types.KeyTypeEd25519})
	if err != nil {
		t.Fatal(err)
	}
	d, err := other.DescribeKeyPairs(ctx(t), &ec2.DescribeKeyPairsInput{})
	if err != nil || len(d.KeyPairs) != 0 {
		t.Fatalf("second account sees %+v (%v)", d, err)
	}
	_, err = other.CreateTags(ctx(t), &ec2.CreateTagsInput{Resources: []string{aws.ToString(kp.KeyPairId)}, Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}})
	wantAPIError(t, err, "InvalidKeyPair.NotFound", 400)
	_, err = other.DeleteKeyPair(ctx(t), &ec2.DeleteKeyPairInput{KeyPairId: kp.KeyPairId})
	wantAPIError(t, err, "InvalidKeyPair.NotFound", 400)
	if _, err := other.CreateKeyPair(ctx(t), &ec2.CreateKeyPairInput{KeyName: aws.String("shared-name"), KeyType: types.KeyTypeEd25519}); err != nil {
		t.Fatalf("second account cannot reuse a name: %v", err)
	}
	d, err = first.DescribeKeyPairs(ctx(t), &ec2.DescribeKeyPairsInput{})
	if err != nil || len(d.KeyPairs) != 1 || aws.ToString(d.KeyPairs[0].KeyPairId) != aws.ToString(kp.KeyPairId) {
		t.Fatalf("first account: %+v (%v)", d, err)
	}
}

// TestSurvivesSIGKILL: every key pair and tag is there after the server is
// killed without warning and started again.
func TestSurvivesSIGKILL(t *testing.T) {
	srv, c := start(t)
	ids := map[string]string{}
	for _, name := range []string{"a", "b", "c"} {
		out, err := c.CreateKeyPair(ctx(t), &ec2.CreateKeyPairInput{KeyName: aws.String(name), KeyType: types.KeyTypeEd25519})
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = aws.ToString(out.KeyPairId)
	}
	if _, err := c.CreateTags(ctx(t), &ec2.CreateTagsInput{Resources: []string{ids["a"], ids["b"]},
		Tags: []types.Tag{{Key: aws.String("env"), Value: aws.String("prod")}}}); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	if err := srv.Restart(ctx(t)); err != nil {
		t.Fatal(err)
	}
	d, err := c.DescribeKeyPairs(ctx(t), &ec2.DescribeKeyPairsInput{})
	if err != nil || len(d.KeyPairs) != 3 {
		t.Fatalf("after SIGKILL: %v %+v", err, d)
	}
	tags, err := c.DescribeTags(ctx(t), &ec2.DescribeTagsInput{Filters: []types.Filter{{Name: aws.String("key"), Values: []string{"env"}}}})
	if err != nil || len(tags.Tags) != 2 {
		t.Fatalf("tags after SIGKILL: %v %+v", err, tags)
	}
	// A clean stop and start keeps them too.
	srv.Stop()
	if err := srv.Restart(ctx(t)); err != nil {
		t.Fatal(err)
	}
	d, err = c.DescribeKeyPairs(ctx(t), &ec2.DescribeKeyPairsInput{Filters: []types.Filter{{Name: aws.String("tag:env"), Values: []string{"pr*"}}}})
	if err != nil || len(d.KeyPairs) != 2 {
		t.Fatalf("after restart: %v %+v", err, d)
	}
}

func TestRegionsAndZones(t *testing.T) {
	srv, c := start(t)
	r, err := c.DescribeRegions(ctx(t), &ec2.DescribeRegionsInput{})
	if err != nil || len(r.Regions) != 1 || aws.ToString(r.Regions[0].RegionName) != "us-east-1" ||
		aws.ToString(r.Regions[0].Endpoint) != strings.TrimPrefix(srv.Endpoint, "http://") {
		t.Fatalf("regions: %v %+v", err, r)
	}
	_, err = c.DescribeRegions(ctx(t), &ec2.DescribeRegionsInput{RegionNames: []string{"mars-north-1"}})
	wantAPIError(t, err, "InvalidParameterValue", 400)

	z, err := c.DescribeAvailabilityZones(ctx(t), &ec2.DescribeAvailabilityZonesInput{})
	if err != nil || len(z.AvailabilityZones) != 3 {
		t.Fatalf("zones: %v %+v", err, z)
	}
	want := map[string]string{"us-east-1a": "use1-az1", "us-east-1b": "use1-az2", "us-east-1c": "use1-az3"}
	for _, az := range z.AvailabilityZones {
		if want[aws.ToString(az.ZoneName)] != aws.ToString(az.ZoneId) || az.State != types.AvailabilityZoneStateAvailable {
			t.Fatalf("zone %+v", az)
		}
	}
	z, err = c.DescribeAvailabilityZones(ctx(t), &ec2.DescribeAvailabilityZonesInput{
		Filters: []types.Filter{{Name: aws.String("zone-name"), Values: []string{"*b", "*c"}}}})
	if err != nil || len(z.AvailabilityZones) != 2 {
		t.Fatalf("zone filter: %v %+v", err, z)
	}
	_, err = c.DescribeAvailabilityZones(ctx(t), &ec2.DescribeAvailabilityZonesInput{ZoneNames: []string{"us-east-1z"}})
	wantAPIError(t, err, "InvalidParameterValue", 400)
}

// TestOtherRegion: --region and --zones configure what the endpoint serves.
func TestOtherRegion(t *testing.T) {
	srv, _ := start(t, "--region", "eu-west-2", "--zones", "a,b")
	srv.Region = "eu-west-2"
	c, err := srv.EC2()
	if err != nil {
		t.Fatal(err)
	}
	z, err := c.DescribeAvailabilityZones(ctx(t), &ec2.DescribeAvailabilityZonesInput{})
	if err != nil || len(z.AvailabilityZones) != 2 || aws.ToString(z.AvailabilityZones[1].ZoneId) != "euw2-az2" {
		t.Fatalf("zones: %v %+v", err, z)
	}
}
