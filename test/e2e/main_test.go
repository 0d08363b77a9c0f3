// Package e2e drives a real `nubo serve` process with aws-sdk-go-v2 and the
// stock aws CLI, as users do.
package e2e

import (
	"context"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"nubo/internal/nubotest"
)

// start runs a fresh server for one test and stops it when the test ends.
func start(t *testing.T, args ...string) (*nubotest.Server, *ec2.Client) {
	t.Helper()
	return startIn(t, t.TempDir(), args...)
}

func startIn(t *testing.T, dir string, args ...string) (*nubotest.Server, *ec2.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	srv, err := nubotest.Start(ctx, dir, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Stop()
		if t.Failed() {
			t.Logf("nubo stderr:\n%s", srv.Stderr())
		}
		// Every server makes host state (its data plane's link, route and
		// namespaces; instances): take it all away.
		srv.Cleanup(t)
	})
	c, err := srv.EC2()
	if err != nil {
		t.Fatal(err)
	}
	return srv, c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// wantAPIError checks that err is the EC2 error code with the HTTP status.
func wantAPIError(t *testing.T, err error, code string, status int) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want %s error, got %v", code, err)
	}
	if ae.ErrorCode() != code {
		t.Fatalf("want error code %s, got %s: %s", code, ae.ErrorCode(), ae.ErrorMessage())
	}
	var re *smithyhttp.ResponseError
	if status != 0 && errors.As(err, &re) && re.HTTPStatusCode() != status {
		t.Fatalf("%s: want HTTP %d, got %d", code, status, re.HTTPStatusCode())
	}
}

func decode(b64 string) string {
	b, _ := base64.StdEncoding.DecodeString(b64)
	return string(b)
}
