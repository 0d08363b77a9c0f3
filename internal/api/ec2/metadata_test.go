package ec2

import (
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"nubo/internal/api/ec2query"
	"nubo/internal/instance"
	"nubo/internal/nubotest"
)

// sdkInstances serves the instance actions (over real services) to
// aws-sdk-go-v2, whose (de)serializers check the wire shapes.
func sdkInstances(t *testing.T) (*ec2.Client, *igEnv) {
	t.Helper()
	v := newIGEnv(t)
	q := &ec2query.Server{Region: "us-east-1", Actions: v.a.Actions(), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Lookup: func(string) (ec2query.Account, bool) {
			return ec2query.Account{ID: v.account, Secret: "secret"}, true
		}}
	srv := httptest.NewServer(q)
	t.Cleanup(srv.Close)
	return ec2.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1, HTTPClient: nubotest.HTTPClient,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")}), v
}

func runOne(t *testing.T, c *ec2.Client, image string, mo *types.InstanceMetadataOptionsRequest) (types.Instance, error) {
	t.Helper()
	out, err := c.RunInstances(tctx(t), &ec2.RunInstancesInput{ImageId: aws.String(image), InstanceType: types.InstanceTypeT3Micro,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), MetadataOptions: mo})
	if err != nil {
		return types.Instance{}, err
	}
	return out.Instances[0], nil
}

func describeOne(t *testing.T, c *ec2.Client, id string) types.Instance {
	t.Helper()
	out, err := c.DescribeInstances(tctx(t), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Reservations[0].Instances[0]
}

type options struct {
	state, tokens, endpoint, tags, ipv6 string
	hops                                int32
}

func optionsOf(o *types.InstanceMetadataOptionsResponse) options {
	if o == nil {
		return options{}
	}
	return options{string(o.State), string(o.HttpTokens), string(o.HttpEndpoint), string(o.InstanceMetadataTags),
		string(o.HttpProtocolIpv6), aws.ToInt32(o.HttpPutResponseHopLimit)}
}

func TestMetadataOptionsWithSDK(t *testing.T) {
	c, v := sdkInstances(t)
	ctx := tctx(t)

	plain, err := runOne(t, c, v.image, nil)
	if err != nil {
		t.Fatal(err)
	}
	defaults := options{"applied", "optional", "enabled", "disabled", "disabled", 1}
	if got := optionsOf(plain.MetadataOptions); got != defaults {
		t.Fatalf("RunInstances metadataOptions %+v, want %+v", got, defaults)
	}
	if got := optionsOf(describeOne(t, c, *plain.InstanceId).MetadataOptions); got != defaults {
		t.Fatalf("DescribeInstances metadataOptions %+v, want %+v", got, defaults)
	}

	strict, err := runOne(t, c, v.image, &types.InstanceMetadataOptionsRequest{HttpTokens: types.HttpTokensStateRequired,
		HttpPutResponseHopLimit: aws.Int32(2), InstanceMetadataTags: types.InstanceMetadataTagsStateEnabled})
	if err != nil {
		t.Fatal(err)
	}
	want := options{"applied", "required", "enabled", "enabled", "disabled", 2}
	if got := optionsOf(describeOne(t, c, *strict.InstanceId).MetadataOptions); got != want {
		t.Fatalf("launched with options: %+v, want %+v", got, want)
	}

	for _, bad := range []*types.InstanceMetadataOptionsRequest{
		{HttpTokens: "sometimes"},
		{HttpEndpoint: "on"},
		{HttpPutResponseHopLimit: aws.Int32(0)},
		{HttpPutResponseHopLimit: aws.Int32(65)},
		{InstanceMetadataTags: "yes"},
	} {
		if _, err := runOne(t, c, v.image, bad); err == nil {
			t.Fatalf("RunInstances took %+v", bad)
		} else {
			wantAPIError(t, err, "InvalidParameterValue")
		}
	}

	// Modify changes what it names and keeps the rest.
	mod, err := c.ModifyInstanceMetadataOptions(ctx, &ec2.ModifyInstanceMetadataOptionsInput{InstanceId: plain.InstanceId,
		HttpTokens: types.HttpTokensStateRequired, HttpPutResponseHopLimit: aws.Int32(3)})
	if err != nil {
		t.Fatal(err)
	}
	want = options{"applied", "required", "enabled", "disabled", "disabled", 3}
	if aws.ToString(mod.InstanceId) != *plain.InstanceId || optionsOf(mod.InstanceMetadataOptions) != want {
		t.Fatalf("ModifyInstanceMetadataOptions answered %s %+v", aws.ToString(mod.InstanceId), optionsOf(mod.InstanceMetadataOptions))
	}
	if _, err := c.ModifyInstanceMetadataOptions(ctx, &ec2.ModifyInstanceMetadataOptionsInput{InstanceId: plain.InstanceId,
		HttpEndpoint: types.InstanceMetadataEndpointStateDisabled, HttpProtocolIpv6: types.InstanceMetadataProtocolStateEnabled}); err != nil {
		t.Fatal(err)
	}
	want = options{"applied", "required", "disabled", "disabled", "enabled", 3}
	if got := optionsOf(describeOne(t, c, *plain.InstanceId).MetadataOptions); got != want {
		t.Fatalf("after two modifies: %+v, want %+v", got, want)
	}

	// Filters.
	out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []types.Filter{
		{Name: aws.String("metadata-options.http-endpoint"), Values: []string{"disabled"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Reservations) != 1 || *out.Reservations[0].Instances[0].InstanceId != *plain.InstanceId {
		t.Fatalf("filter by http-endpoint: %+v", out.Reservations)
	}

	// Refusals.
	for _, tc := range []struct {
		in   *ec2.ModifyInstanceMetadataOptionsInput
		code string
	}{
		{&ec2.ModifyInstanceMetadataOptionsInput{InstanceId: plain.InstanceId}, "MissingParameter"},
		{&ec2.ModifyInstanceMetadataOptionsInput{InstanceId: plain.InstanceId, HttpTokens: "maybe"}, "InvalidParameterValue"},
		{&ec2.ModifyInstanceMetadataOptionsInput{InstanceId: plain.InstanceId, HttpPutResponseHopLimit: aws.Int32(100)}, "InvalidParameterValue"},
		{&ec2.ModifyInstanceMetadataOptionsInput{InstanceId: aws.String("i-0000000000000000f"), HttpTokens: "optional"}, "InvalidInstanceID.NotFound"},
		{&ec2.ModifyInstanceMetadataOptionsInput{InstanceId: aws.String("vol-1"), HttpTokens: "optional"}, "InvalidInstanceID.Malformed"},
		{&ec2.ModifyInstanceMetadataOptionsInput{InstanceId: plain.InstanceId, HttpTokens: "optional", DryRun: aws.Bool(true)}, "DryRunOperation"},
	} {
		_, err := c.ModifyInstanceMetadataOptions(ctx, tc.in)
		wantAPIError(t, err, tc.code)
	}
	if got := optionsOf(describeOne(t, c, *plain.InstanceId).MetadataOptions); got != want {
		t.Fatalf("refused modifies changed the options: %+v", got)
	}
	if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{*strict.InstanceId}}); err != nil {
		t.Fatal(err)
	}
	_, err = c.ModifyInstanceMetadataOptions(ctx, &ec2.ModifyInstanceMetadataOptionsInput{InstanceId: strict.InstanceId, HttpTokens: "optional"})
	wantAPIError(t, err, "IncorrectInstanceState")
}

func TestUserDataAttributeWithSDK(t *testing.T) {
	c, v := sdkInstances(t)
	ctx := tctx(t)
	in, err := runOne(t, c, v.image, nil)
	if err != nil {
		t.Fatal(err)
	}
	id := in.InstanceId
	attr, err := c.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{InstanceId: id, Attribute: types.InstanceAttributeNameUserData})
	if err != nil {
		t.Fatal(err)
	}
	if attr.UserData != nil && aws.ToString(attr.UserData.Value) != "" {
		t.Fatalf("user data of an instance launched without: %q", aws.ToString(attr.UserData.Value))
	}
	script := []byte("#!/bin/sh\necho hello\n")
	set := &ec2.ModifyInstanceAttributeInput{InstanceId: id, UserData: &types.SecureBlobAttributeValue{Value: script}}
	_, err = c.ModifyInstanceAttribute(ctx, set)
	wantAPIError(t, err, "IncorrectInstanceState") // pending, not stopped

	if err := v.a.Instances.Modify(context.Background(), v.account, *id, func(in *instance.Instance) error {
		in.State, in.Desired = instance.Stopped, instance.Stopped
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ModifyInstanceAttribute(ctx, set); err != nil {
		t.Fatal(err)
	}
	attr, err = c.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{InstanceId: id, Attribute: types.InstanceAttributeNameUserData})
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(attr.UserData.Value); got != base64.StdEncoding.EncodeToString(script) {
		t.Fatalf("userData %q", got)
	}
	rec, err := v.a.Instances.Get(context.Background(), v.account, *id)
	if err != nil {
		t.Fatal(err)
	}
	if raw, _ := base64.StdEncoding.DecodeString(rec.UserData); string(raw) != string(script) {
		t.Fatalf("stored user data decodes to %q", raw)
	}
}
