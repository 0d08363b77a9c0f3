package e2e

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func TestDefaultVPC(t *testing.T) {
	_, c := start(t)
	attrs, err := c.DescribeAccountAttributes(ctx(t), &ec2.DescribeAccountAttributesInput{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, a := range attrs.AccountAttributes {
		got[aws.ToString(a.AttributeName)] = aws.ToString(a.AttributeValues[0].AttributeValue)
	}
	if got["supported-platforms"] != "VPC" || got["default-vpc"] == "" || got["default-vpc"] == "none" {
		t.Fatalf("account attributes %v", got)
	}
	vpcs, err := c.DescribeVpcs(ctx(t), &ec2.DescribeVpcsInput{Filters: []types.Filter{{Name: aws.String("is-default"), Values: []string{"true"}}}})
	if err != nil || len(vpcs.Vpcs) != 1 || aws.ToString(vpcs.Vpcs[0].CidrBlock) != "172.31.0.0/16" || aws.ToString(vpcs.Vpcs[0].VpcId) != got["default-vpc"] {
		t.Fatalf("default VPC: %v %+v", err, vpcs)
	}
	subnets, err := c.DescribeSubnets(ctx(t), &ec2.DescribeSubnetsInput{Filters: []types.Filter{{Name: aws.String("default-for-az"), Values: []string{"true"}}}})
	if err != nil || len(subnets.Subnets) != 3 {
		t.Fatalf("default subnets: %v %+v", err, subnets)
	}
	for _, sn := range subnets.Subnets {
		if !aws.ToBool(sn.MapPublicIpOnLaunch) || aws.ToInt32(sn.AvailableIpAddressCount) != 4091 {
			t.Errorf("default subnet %s: %+v", aws.ToString(sn.SubnetId), sn)
		}
	}
	rts, err := c.DescribeRouteTables(ctx(t), &ec2.DescribeRouteTablesInput{Filters: []types.Filter{{Name: aws.String("association.main"), Values: []string{"true"}}}})
	if err != nil || len(rts.RouteTables) != 1 || len(rts.RouteTables[0].Routes) != 2 {
		t.Fatalf("main route table: %v %+v", err, rts)
	}
}

func TestVPCResources(t *testing.T) {
	_, c := start(t)
	v, err := c.CreateVpc(ctx(t), &ec2.CreateVpcInput{CidrBlock: aws.String("10.0.0.0/16"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeVpc, Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("lab")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	vpcID := v.Vpc.VpcId
	_, err = c.CreateVpc(ctx(t), &ec2.CreateVpcInput{CidrBlock: aws.String("10.0.0.0/8")})
	wantAPIError(t, err, "InvalidVpc.Range", 400)
	_, err = c.CreateVpc(ctx(t), &ec2.CreateVpcInput{CidrBlock: aws.String("10.0.0.1/16")})
	wantAPIError(t, err, "InvalidParameterValue", 400)

	sn, err := c.CreateSubnet(ctx(t), &ec2.CreateSubnetInput{VpcId: vpcID, CidrBlock: aws.String("10.0.1.0/24"), AvailabilityZone: aws.String("us-east-1b")})
	if err != nil || aws.ToInt32(sn.Subnet.AvailableIpAddressCount) != 251 || aws.ToString(sn.Subnet.AvailabilityZoneId) != "use1-az2" {
		t.Fatalf("subnet: %v %+v", err, sn)
	}
	_, err = c.CreateSubnet(ctx(t), &ec2.CreateSubnetInput{VpcId: vpcID, CidrBlock: aws.String("10.0.1.128/25")})
	wantAPIError(t, err, "InvalidSubnet.Conflict", 400)
	_, err = c.CreateSubnet(ctx(t), &ec2.CreateSubnetInput{VpcId: vpcID, CidrBlock: aws.String("10.1.0.0/24")})
	wantAPIError(t, err, "InvalidSubnet.Range", 400)

	igw, err := c.CreateInternetGateway(ctx(t), &ec2.CreateInternetGatewayInput{})
	if err != nil {
		t.Fatal(err)
	}
	igwID := igw.InternetGateway.InternetGatewayId
	rt, err := c.CreateRouteTable(ctx(t), &ec2.CreateRouteTableInput{VpcId: vpcID})
	if err != nil {
		t.Fatal(err)
	}
	rtID := rt.RouteTable.RouteTableId
	_, err = c.CreateRoute(ctx(t), &ec2.CreateRouteInput{RouteTableId: rtID, DestinationCidrBlock: aws.String("0.0.0.0/0"), GatewayId: igwID})
	wantAPIError(t, err, "InvalidParameterValue", 400) // not attached to this VPC
	if _, err := c.AttachInternetGateway(ctx(t), &ec2.AttachInternetGatewayInput{InternetGatewayId: igwID, VpcId: vpcID}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateRoute(ctx(t), &ec2.CreateRouteInput{RouteTableId: rtID, DestinationCidrBlock: aws.String("0.0.0.0/0"), GatewayId: igwID}); err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateRoute(ctx(t), &ec2.CreateRouteInput{RouteTableId: rtID, DestinationCidrBlock: aws.String("0.0.0.0/0"), GatewayId: igwID})
	wantAPIError(t, err, "RouteAlreadyExists", 400)
	assoc, err := c.AssociateRouteTable(ctx(t), &ec2.AssociateRouteTableInput{RouteTableId: rtID, SubnetId: sn.Subnet.SubnetId})
	if err != nil {
		t.Fatal(err)
	}

	// Dependencies: nothing goes while something uses it.
	_, err = c.DeleteVpc(ctx(t), &ec2.DeleteVpcInput{VpcId: vpcID})
	wantAPIError(t, err, "DependencyViolation", 400)
	_, err = c.DeleteInternetGateway(ctx(t), &ec2.DeleteInternetGatewayInput{InternetGatewayId: igwID})
	wantAPIError(t, err, "DependencyViolation", 400)
	_, err = c.DeleteRouteTable(ctx(t), &ec2.DeleteRouteTableInput{RouteTableId: rtID})
	wantAPIError(t, err, "DependencyViolation", 400)

	// Detaching the gateway blackholes the route.
	if _, err := c.DetachInternetGateway(ctx(t), &ec2.DetachInternetGatewayInput{InternetGatewayId: igwID, VpcId: vpcID}); err != nil {
		t.Fatal(err)
	}
	d, err := c.DescribeRouteTables(ctx(t), &ec2.DescribeRouteTablesInput{RouteTableIds: []string{aws.ToString(rtID)}})
	if err != nil || d.RouteTables[0].Routes[1].State != types.RouteStateBlackhole {
		t.Fatalf("route after detach: %v %+v", err, d)
	}

	for _, step := range []func() error{
		func() error {
			_, err := c.DisassociateRouteTable(ctx(t), &ec2.DisassociateRouteTableInput{AssociationId: assoc.AssociationId})
			return err
		},
		func() error {
			_, err := c.DeleteRouteTable(ctx(t), &ec2.DeleteRouteTableInput{RouteTableId: rtID})
			return err
		},
		func() error {
			_, err := c.DeleteInternetGateway(ctx(t), &ec2.DeleteInternetGatewayInput{InternetGatewayId: igwID})
			return err
		},
		func() error {
			_, err := c.DeleteSubnet(ctx(t), &ec2.DeleteSubnetInput{SubnetId: sn.Subnet.SubnetId})
			return err
		},
		func() error {
			_, err := c.DeleteVpc(ctx(t), &ec2.DeleteVpcInput{VpcId: vpcID})
			return err
		},
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	_, err = c.DescribeVpcs(ctx(t), &ec2.DescribeVpcsInput{VpcIds: []string{aws.ToString(vpcID)}})
	wantAPIError(t, err, "InvalidVpcID.NotFound", 400)
}
