package e2e

import (
	"os/exec"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"nubo/internal/nubotest"
)

// TestVPCIsolation: two VPCs with the same CIDR; one public (IGW + default
// route), one private. The host reaches the public one's instance, not the
// private one's (though it has a public IP); the VPCs cannot reach each other.
func TestVPCIsolation(t *testing.T) {
	srv, c, image := startWithImages(t)
	mk := func(public bool) (subnet string) {
		v, err := c.CreateVpc(ctx(t), &ec2.CreateVpcInput{CidrBlock: aws.String("10.0.0.0/16")})
		if err != nil {
			t.Fatal(err)
		}
		sn, err := c.CreateSubnet(ctx(t), &ec2.CreateSubnetInput{VpcId: v.Vpc.VpcId, CidrBlock: aws.String("10.0.1.0/24")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nubotest.OpenDefaultGroup(ctx(t), c, aws.ToString(v.Vpc.VpcId), 22); err != nil {
			t.Fatal(err)
		}
		if public {
			igw, err := c.CreateInternetGateway(ctx(t), &ec2.CreateInternetGatewayInput{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.AttachInternetGateway(ctx(t), &ec2.AttachInternetGatewayInput{InternetGatewayId: igw.InternetGateway.InternetGatewayId, VpcId: v.Vpc.VpcId}); err != nil {
				t.Fatal(err)
			}
			rts, err := c.DescribeRouteTables(ctx(t), &ec2.DescribeRouteTablesInput{Filters: []types.Filter{{Name: aws.String("vpc-id"), Values: []string{aws.ToString(v.Vpc.VpcId)}}}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.CreateRoute(ctx(t), &ec2.CreateRouteInput{RouteTableId: rts.RouteTables[0].RouteTableId, DestinationCidrBlock: aws.String("0.0.0.0/0"), GatewayId: igw.InternetGateway.InternetGatewayId}); err != nil {
				t.Fatal(err)
			}
		}
		return aws.ToString(sn.Subnet.SubnetId)
	}
	launch := func(subnet, ip string) types.Instance {
		out, err := c.RunInstances(ctx(t), &ec2.RunInstancesInput{ImageId: aws.String(image), InstanceType: types.InstanceTypeT3Nano,
			MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
			NetworkInterfaces: []types.InstanceNetworkInterfaceSpecification{{DeviceIndex: aws.Int32(0), SubnetId: aws.String(subnet),
				PrivateIpAddress: aws.String(ip), AssociatePublicIpAddress: aws.Bool(true)}}})
		if err != nil {
			t.Fatal(err)
		}
		id := aws.ToString(out.Instances[0].InstanceId)
		waitState(t, c, "running", id)
		return describeOne(t, c, id)
	}
	x := launch(mk(true), "10.0.1.4")
	y := launch(mk(false), "10.0.1.9")
	if aws.ToString(x.PrivateIpAddress) != "10.0.1.4" || aws.ToString(y.PrivateIpAddress) != "10.0.1.9" || y.PublicIpAddress == nil {
		t.Fatalf("addresses: x %s, y %s / %s", aws.ToString(x.PrivateIpAddress), aws.ToString(y.PrivateIpAddress), aws.ToString(y.PublicIpAddress))
	}
	if got := sshBanner(aws.ToString(x.PublicIpAddress)); got == "" {
		t.Error("the host cannot reach an instance in a public subnet by its public IP")
	}
	if got := sshBanner(aws.ToString(y.PublicIpAddress)); got != "" {
		t.Errorf("the host reached an instance in a private subnet: %q", got)
	}
	// From x: y's private address means nothing in x's VPC, and y's public
	// address leads nowhere (y's subnet is private).
	for _, target := range []string{aws.ToString(y.PrivateIpAddress), aws.ToString(y.PublicIpAddress)} {
		cmd := exec.Command("nsenter", "-t", mustPID(t, srv, aws.ToString(x.InstanceId)), "-a", "timeout", "2", "bash", "-c", "exec 3<>/dev/tcp/"+target+"/22; head -c 7 <&3")
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Errorf("x reached %s across VPCs: %q", target, out)
		}
	}
	_, _ = c.TerminateInstances(ctx(t), &ec2.TerminateInstancesInput{InstanceIds: []string{aws.ToString(x.InstanceId), aws.ToString(y.InstanceId)}})
	waitState(t, c, "terminated", aws.ToString(x.InstanceId), aws.ToString(y.InstanceId))
}
