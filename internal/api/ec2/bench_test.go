package ec2

import (
	"context"
	"encoding/xml"
	"io"
	"testing"

	"nubo/internal/api/ec2query"
)

func BenchmarkDescribeInstanceTypes(b *testing.B) {
	a := &API{Region: NewRegion("us-east-1", "x", []string{"a", "b", "c"})}
	r := &ec2query.Request{Params: ec2query.NewParams(nil)}
	for i := 0; i < b.N; i++ {
		out, err := a.describeInstanceTypes(context.Background(), r)
		if err != nil {
			b.Fatal(err)
		}
		if err := xml.NewEncoder(io.Discard).EncodeElement(out, xml.StartElement{Name: xml.Name{Local: "x"}}); err != nil {
			b.Fatal(err)
		}
	}
}
