package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func TestTags(t *testing.T) {
	_, c := start(t)
	var ids []string
	for i := 0; i < 3; i++ {
		out, err := c.CreateKeyPair(ctx(t), &ec2.CreateKeyPairInput{KeyName: aws.String(fmt.Sprint("k", i)), KeyType: types.KeyTypeEd25519})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, aws.ToString(out.KeyPairId))
	}
	tag := func(k, v string) types.Tag { return types.Tag{Key: aws.String(k), Value: aws.String(v)} }
	if _, err := c.CreateTags(ctx(t), &ec2.CreateTagsInput{Resources: ids, Tags: []types.Tag{tag("env", "dev"), tag("owner", "ana")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateTags(ctx(t), &ec2.CreateTagsInput{Resources: ids[:1], Tags: []types.Tag{tag("env", "prod")}}); err != nil {
		t.Fatal(err)
	}

	all, err := c.DescribeTags(ctx(t), &ec2.DescribeTagsInput{})
	if err != nil || len(all.Tags) != 6 {
		t.Fatalf("describe tags: %v %d", err, len(all.Tags))
	}
	prod, err := c.DescribeTags(ctx(t), &ec2.DescribeTagsInput{Filters: []types.Filter{
		{Name: aws.String("key"), Values: []string{"env"}}, {Name: aws.String("value"), Values: []string{"prod"}}}})
	if err != nil || len(prod.Tags) != 1 || aws.ToString(prod.Tags[0].ResourceId) != ids[0] || prod.Tags[0].ResourceType != types.ResourceTypeKeyPair {
		t.Fatalf("filtered: %v %+v", err, prod.Tags)
	}

	// Pagination: 6 tags, pages of 5.
	p := ec2.NewDescribeTagsPaginator(c, &ec2.DescribeTagsInput{MaxResults: aws.Int32(5)})
	n, pages := 0, 0
	for p.HasMorePages() {
		out, err := p.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		n += len(out.Tags)
		pages++
	}
	if n != 6 || pages != 2 {
		t.Fatalf("paginated %d tags in %d pages", n, pages)
	}
	_, err = c.DescribeTags(ctx(t), &ec2.DescribeTagsInput{MaxResults: aws.Int32(2)})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	_, err = c.DescribeTags(ctx(t), &ec2.DescribeTagsInput{NextToken: aws.String("!!!")})
	wantAPIError(t, err, "InvalidNextToken", 400)

	// DeleteTags: by key and matching value, by key only, and everything.
	if _, err := c.DeleteTags(ctx(t), &ec2.DeleteTagsInput{Resources: ids[:2], Tags: []types.Tag{tag("env", "dev")}}); err != nil {
		t.Fatal(err)
	}
	left, _ := c.DescribeTags(ctx(t), &ec2.DescribeTagsInput{Filters: []types.Filter{{Name: aws.String("key"), Values: []string{"env"}}}})
	if len(left.Tags) != 2 { // ids[0] keeps env=prod (value did not match), ids[2] keeps env=dev
		t.Fatalf("after value-matched delete: %+v", left.Tags)
	}
	if _, err := c.DeleteTags(ctx(t), &ec2.DeleteTagsInput{Resources: ids[:1], Tags: []types.Tag{{Key: aws.String("env")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteTags(ctx(t), &ec2.DeleteTagsInput{Resources: ids[2:]}); err != nil {
		t.Fatal(err)
	}
	all, _ = c.DescribeTags(ctx(t), &ec2.DescribeTagsInput{})
	if len(all.Tags) != 2 { // owner on ids[0] and ids[1]
		t.Fatalf("after deletes: %+v", all.Tags)
	}

	// Errors, and a failed call changes nothing.
	_, err = c.CreateTags(ctx(t), &ec2.CreateTagsInput{Resources: []string{"key-0123456789abcdef0"}, Tags: []types.Tag{tag("a", "b")}})
	wantAPIError(t, err, "InvalidKeyPair.NotFound", 400)
	_, err = c.CreateTags(ctx(t), &ec2.CreateTagsInput{Resources: []string{"bogus"}, Tags: []types.Tag{tag("a", "b")}})
	wantAPIError(t, err, "InvalidID", 400)
	_, err = c.CreateTags(ctx(t), &ec2.CreateTagsInput{Resources: ids[:1], Tags: []types.Tag{tag(strings.Repeat("k", 129), "v")}})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	_, err = c.CreateTags(ctx(t), &ec2.CreateTagsInput{Resources: ids[:1], Tags: []types.Tag{tag("a", "b")}, DryRun: aws.Bool(true)})
	wantAPIError(t, err, "DryRunOperation", 412)
	var many []types.Tag
	for i := 0; i < 50; i++ {
		many = append(many, tag(fmt.Sprint("t", i), "v"))
	}
	_, err = c.CreateTags(ctx(t), &ec2.CreateTagsInput{Resources: ids[:1], Tags: many})
	wantAPIError(t, err, "TagLimitExceeded", 400)
	all, _ = c.DescribeTags(ctx(t), &ec2.DescribeTagsInput{})
	if len(all.Tags) != 2 {
		t.Fatalf("failed calls changed tags: %+v", all.Tags)
	}
}
