package e2e

import (
	"reflect"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// groupsOf is an instance's groups as "id/name".
func groupsOf(gs []types.GroupIdentifier) []string {
	var out []string
	for _, g := range gs {
		out = append(out, aws.ToString(g.GroupId)+"/"+aws.ToString(g.GroupName))
	}
	return out
}

// TestSecurityGroupsOfInstances: every VPC has a default group; instances
// launch into the groups given (or the default one), show them, are found
// by them, and change them while running; a VPC with groups is not deleted.
func TestSecurityGroupsOfInstances(t *testing.T) {
	_, c, image := startWithImages(t)
	vpcs, err := c.DescribeVpcs(ctx(t), &ec2.DescribeVpcsInput{Filters: []types.Filter{{Name: aws.String("is-default"), Values: []string{"true"}}}})
	if err != nil {
		t.Fatal(err)
	}
	defVPC := aws.ToString(vpcs.Vpcs[0].VpcId)
	sgs, err := c.DescribeSecurityGroups(ctx(t), &ec2.DescribeSecurityGroupsInput{Filters: []types.Filter{
		{Name: aws.String("vpc-id"), Values: []string{defVPC}}, {Name: aws.String("group-name"), Values: []string{"default"}}}})
	if err != nil || len(sgs.SecurityGroups) != 1 {
		t.Fatalf("the default VPC's default group: %v %+v", err, sgs)
	}
	def := aws.ToString(sgs.SecurityGroups[0].GroupId)
	create := func(name, vpcID string) string {
		g, err := c.CreateSecurityGroup(ctx(t), &ec2.CreateSecurityGroupInput{GroupName: aws.String(name), Description: aws.String(name), VpcId: aws.String(vpcID)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(g.GroupId)
	}
	web, db := create("web", defVPC), create("db", defVPC)

	run, err := c.RunInstances(ctx(t), &ec2.RunInstancesInput{ImageId: aws.String(image), InstanceType: types.InstanceTypeT3Micro,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), SecurityGroupIds: []string{web}, SecurityGroups: []string{"db"}})
	if err != nil {
		t.Fatal(err)
	}
	both := aws.ToString(run.Instances[0].InstanceId)
	if got, want := groupsOf(run.Instances[0].SecurityGroups), []string{web + "/web", db + "/db"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("RunInstances groups %v, want %v", got, want)
	}
	run, err = c.RunInstances(ctx(t), &ec2.RunInstancesInput{ImageId: aws.String(image), InstanceType: types.InstanceTypeT3Micro,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	plain := aws.ToString(run.Instances[0].InstanceId)
	waitState(t, c, "running", both, plain)
	if got, want := groupsOf(describeOne(t, c, plain).SecurityGroups), []string{def + "/default"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("an instance launched without groups is in %v, want %v", got, want)
	}
	found, err := c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{Filters: []types.Filter{{Name: aws.String("instance.group-name"), Values: []string{"web"}}}})
	if err != nil || len(found.Reservations) != 1 || aws.ToString(found.Reservations[0].Instances[0].InstanceId) != both {
		t.Fatalf("instance.group-name=web: %v %+v", err, found)
	}

	// A running instance changes groups.
	if _, err := c.ModifyInstanceAttribute(ctx(t), &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(plain), Groups: []string{db, web}}); err != nil {
		t.Fatal(err)
	}
	attr, err := c.DescribeInstanceAttribute(ctx(t), &ec2.DescribeInstanceAttributeInput{InstanceId: aws.String(plain), Attribute: types.InstanceAttributeNameGroupSet})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := groupsOf(attr.Groups), []string{db + "/", web + "/"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("groupSet attribute %v, want %v", got, want)
	}

	// EC2's refusals.
	other, err := c.CreateVpc(ctx(t), &ec2.CreateVpcInput{CidrBlock: aws.String("10.0.0.0/16")})
	if err != nil {
		t.Fatal(err)
	}
	otherVPC := aws.ToString(other.Vpc.VpcId)
	sn, err := c.CreateSubnet(ctx(t), &ec2.CreateSubnetInput{VpcId: aws.String(otherVPC), CidrBlock: aws.String("10.0.1.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.RunInstances(ctx(t), &ec2.RunInstancesInput{ImageId: aws.String(image), InstanceType: types.InstanceTypeT3Micro, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		SubnetId: sn.Subnet.SubnetId, SecurityGroupIds: []string{web}})
	wantAPIError(t, err, "InvalidParameter", 400)
	_, err = c.RunInstances(ctx(t), &ec2.RunInstancesInput{ImageId: aws.String(image), InstanceType: types.InstanceTypeT3Micro, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		SubnetId: sn.Subnet.SubnetId, SecurityGroups: []string{"default"}})
	wantAPIError(t, err, "InvalidParameterCombination", 400)
	_, err = c.RunInstances(ctx(t), &ec2.RunInstancesInput{ImageId: aws.String(image), InstanceType: types.InstanceTypeT3Micro, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		SecurityGroupIds: []string{"sg-0123456789abcdef0"}})
	wantAPIError(t, err, "InvalidGroup.NotFound", 400)

	// A VPC goes with its default group, not with another.
	lab := create("lab", otherVPC)
	if _, err := c.DeleteSubnet(ctx(t), &ec2.DeleteSubnetInput{SubnetId: sn.Subnet.SubnetId}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DeleteVpc(ctx(t), &ec2.DeleteVpcInput{VpcId: aws.String(otherVPC)})
	wantAPIError(t, err, "DependencyViolation", 400)
	if _, err := c.DeleteSecurityGroup(ctx(t), &ec2.DeleteSecurityGroupInput{GroupId: aws.String(lab)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteVpc(ctx(t), &ec2.DeleteVpcInput{VpcId: aws.String(otherVPC)}); err != nil {
		t.Fatal(err)
	}
	left, err := c.DescribeSecurityGroups(ctx(t), &ec2.DescribeSecurityGroupsInput{Filters: []types.Filter{{Name: aws.String("vpc-id"), Values: []string{otherVPC}}}})
	if err != nil || len(left.SecurityGroups) != 0 {
		t.Fatalf("groups of a deleted VPC: %v %+v", err, left)
	}

	if _, err := c.TerminateInstances(ctx(t), &ec2.TerminateInstancesInput{InstanceIds: []string{both, plain}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "terminated", both, plain)
}
