package ec2query_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"nubo/internal/apierr"
)

// Credentials and endpoint of the single test account.
const (
	testRegion    = "us-east-1"
	testService   = "ec2"
	testAccessKey = "AKIAIOSFODNN7EXAMPLE"
	testSecret    = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	testAccountID = "123456789012"
	testEndpoint  = "http://ec2.nubo.test/"
	formType      = "application/x-www-form-urlencoded; charset=utf-8"
)

// signTime is when test requests are signed; away from midnight so that a
// skew of minutes never changes the credential date.
var signTime = time.Date(2024, 5, 17, 12, 30, 0, 0, time.UTC)

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// signer describes how a test request is signed.
type signer struct {
	accessKey, secret string
	region, service   string
	at                time.Time
}

func defaultSigner() signer {
	return signer{testAccessKey, testSecret, testRegion, testService, signTime}
}

func (s signer) creds() aws.Credentials {
	return aws.Credentials{AccessKeyID: s.accessKey, SecretAccessKey: s.secret}
}

// formPOST is an unsigned EC2 POST request with a form body, as SDKs send it.
func formPOST(body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, testEndpoint, strings.NewReader(body))
	r.Header.Set("Content-Type", formType)
	return r
}

// queryGET is an unsigned EC2 GET request carrying the parameters in its query.
func queryGET(query string) *http.Request {
	return httptest.NewRequest(http.MethodGet, testEndpoint+"?"+query, nil)
}

// sign signs r in the Authorization-header form, hashing body as the payload.
func (s signer) sign(t testing.TB, r *http.Request, body string) *http.Request {
	t.Helper()
	err := v4.NewSigner().SignHTTP(context.Background(), s.creds(), r, sha256Hex([]byte(body)), s.service, s.region, s.at)
	if err != nil {
		t.Fatalf("SignHTTP: %v", err)
	}
	return r
}

// presign returns a GET request for the presigned (query-string) form of r,
// valid for expires (X-Amz-Expires; negative leaves it out).
func (s signer) presign(t testing.TB, r *http.Request, expires time.Duration) *http.Request {
	t.Helper()
	if expires >= 0 {
		q := r.URL.Query()
		q.Set("X-Amz-Expires", strconv.Itoa(int(expires/time.Second)))
		r.URL.RawQuery = q.Encode()
	}
	u, hdr, err := v4.NewSigner().PresignHTTP(context.Background(), s.creds(), r, sha256Hex(nil), s.service, s.region, s.at)
	if err != nil {
		t.Fatalf("PresignHTTP: %v", err)
	}
	out := httptest.NewRequest(r.Method, u, nil)
	for k, vs := range hdr {
		if strings.EqualFold(k, "Host") {
			continue
		}
		for _, v := range vs {
			out.Header.Add(k, v)
		}
	}
	return out
}

// wantCode fails unless err is an EC2 error with the given code; it returns it.
func wantCode(t testing.TB, err error, code string) *apierr.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", code)
	}
	e, ok := apierr.As(err)
	if !ok {
		t.Fatalf("got non-EC2 error %T %v, want %s", err, err, code)
	}
	if e.Code != code {
		t.Fatalf("got code %s (%s), want %s", e.Code, e.Message, code)
	}
	if e.Message == "" {
		t.Fatalf("%s has an empty message", code)
	}
	return e
}

// wantNoError fails on any error.
func wantNoError(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		var e *apierr.Error
		if errors.As(err, &e) {
			t.Fatalf("unexpected %s: %s", e.Code, e.Message)
		}
		t.Fatalf("unexpected error: %v", err)
	}
}
