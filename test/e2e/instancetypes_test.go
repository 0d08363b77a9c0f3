package e2e

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func TestDescribeInstanceTypes(t *testing.T) {
	_, c := start(t)
	// Every type, through the SDK's paginator: EC2 pages at 100 unasked.
	p := ec2.NewDescribeInstanceTypesPaginator(c, &ec2.DescribeInstanceTypesInput{})
	seen := map[string]types.InstanceTypeInfo{}
	pages := 0
	for p.HasMorePages() {
		out, err := p.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, it := range out.InstanceTypes {
			if _, dup := seen[string(it.InstanceType)]; dup {
				t.Fatalf("%s listed twice", it.InstanceType)
			}
			seen[string(it.InstanceType)] = it
		}
	}
	if len(seen) < 90 || pages < 1 {
		t.Fatalf("%d types in %d pages", len(seen), pages)
	}
	for _, fam := range []string{"t2", "t3", "t3a", "m5", "m6i", "c5", "c6i", "r5", "r6i", "i3", "i4i"} {
		if _, ok := seen[fam+".large"]; !ok {
			t.Errorf("family %s missing", fam)
		}
	}
	c5 := seen["c5.large"]
	if aws.ToInt32(c5.VCpuInfo.DefaultVCpus) != 2 || aws.ToInt64(c5.MemoryInfo.SizeInMiB) != 4096 ||
		aws.ToInt32(c5.NetworkInfo.MaximumNetworkInterfaces) != 3 || aws.ToInt32(c5.NetworkInfo.Ipv4AddressesPerInterface) != 10 ||
		aws.ToString(c5.NetworkInfo.NetworkPerformance) != "Up to 10 Gigabit" {
		t.Errorf("c5.large as decoded by the SDK: %+v", c5)
	}
	if i3 := seen["i3.large"]; !aws.ToBool(i3.InstanceStorageSupported) || aws.ToInt64(i3.InstanceStorageInfo.TotalSizeInGB) != 475 {
		t.Errorf("i3.large storage: %+v", i3.InstanceStorageInfo)
	}

	out, err := c.DescribeInstanceTypes(ctx(t), &ec2.DescribeInstanceTypesInput{Filters: []types.Filter{
		{Name: aws.String("instance-type"), Values: []string{"c5.*"}},
		{Name: aws.String("vcpu-info.default-vcpus"), Values: []string{"2", "4"}}}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, it := range out.InstanceTypes {
		names = append(names, string(it.InstanceType))
	}
	if strings.Join(names, ",") != "c5.large,c5.xlarge" {
		t.Fatalf("c5 with 2 or 4 vCPUs: %v", names)
	}

	_, err = c.DescribeInstanceTypes(ctx(t), &ec2.DescribeInstanceTypesInput{InstanceTypes: []types.InstanceType{"c5.large", "x9.huge"}})
	wantAPIError(t, err, "InvalidInstanceType", 400)
	_, err = c.DescribeInstanceTypes(ctx(t), &ec2.DescribeInstanceTypesInput{Filters: []types.Filter{{Name: aws.String("colour"), Values: []string{"blue"}}}})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	_, err = c.DescribeInstanceTypes(ctx(t), &ec2.DescribeInstanceTypesInput{MaxResults: aws.Int32(101)})
	wantAPIError(t, err, "InvalidParameterValue", 400)

	offers, err := c.DescribeInstanceTypeOfferings(ctx(t), &ec2.DescribeInstanceTypeOfferingsInput{
		LocationType: types.LocationTypeAvailabilityZone,
		Filters:      []types.Filter{{Name: aws.String("instance-type"), Values: []string{"t3.micro"}}}})
	if err != nil || len(offers.InstanceTypeOfferings) != 3 {
		t.Fatalf("offerings: %v %+v", err, offers)
	}
	if loc := aws.ToString(offers.InstanceTypeOfferings[0].Location); loc != "us-east-1a" {
		t.Fatalf("first offering in %s", loc)
	}
}
