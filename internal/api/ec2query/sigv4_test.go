package ec2query_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"nubo/internal/api/ec2query"
	"nubo/internal/apierr"
)

// verifierAt is the test region's verifier knowing the one test key, with its
// clock stopped at now.
func verifierAt(now time.Time) *ec2query.Verifier {
	return &ec2query.Verifier{
		Region:  testRegion,
		Service: testService,
		Secret: func(ak string) (string, bool) {
			if ak == testAccessKey {
				return testSecret, true
			}
			return "", false
		},
		Now: func() time.Time { return now },
	}
}

// readBody returns the request's body (as the server reads it) and leaves a
// fresh reader in place.
func readBody(t *testing.T, r *http.Request) []byte {
	t.Helper()
	if r.Body == nil {
		return nil
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	r.Body = io.NopCloser(strings.NewReader(string(b)))
	return b
}

const describeBody = "Action=DescribeKeyPairs&Version=2016-11-15&KeyName.1=my+key&Filter.1.Name=key-name&Filter.1.Value.1=a%2A"

func TestVerifyAcceptsSDKSignatures(t *testing.T) {
	s := defaultSigner()
	tests := []struct {
		name string
		req  func(t *testing.T) *http.Request
	}{
		{"POST form body", func(t *testing.T) *http.Request {
			return s.sign(t, formPOST(describeBody), describeBody)
		}},
		{"POST form body without charset", func(t *testing.T) *http.Request {
			r := formPOST(describeBody)
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return s.sign(t, r, describeBody)
		}},
		{"POST empty body", func(t *testing.T) *http.Request {
			return s.sign(t, formPOST(""), "")
		}},
		{"POST body with reserved and unicode characters", func(t *testing.T) *http.Request {
			b := "Action=ImportKeyPair&Version=2016-11-15&KeyName=k%C3%A9y%20%2F%2B%3D&PublicKeyMaterial=c3NoLXJzYSBBQUFB%2B%2F%3D%3D"
			return s.sign(t, formPOST(b), b)
		}},
		{"POST with query string and body", func(t *testing.T) *http.Request {
			r := formPOST(describeBody)
			r.URL.RawQuery = "Action=DescribeKeyPairs"
			return s.sign(t, r, describeBody)
		}},
		{"GET with query", func(t *testing.T) *http.Request {
			return s.sign(t, queryGET(describeBody), "")
		}},
		{"GET with query needing canonical encoding", func(t *testing.T) *http.Request {
			// Spaces, '*', '~', '/', non-ASCII, repeated keys, keys out of order.
			q := "Version=2016-11-15&Action=DescribeKeyPairs&Filter.1.Value.1=a%20b*&Filter.1.Value.2=%7E%2F%C3%A9&Filter.1.Name=key-name&Z=2&Z=1&Empty="
			return s.sign(t, queryGET(q), "")
		}},
		{"signed X-Amz-Content-Sha256 header", func(t *testing.T) *http.Request {
			r := formPOST(describeBody)
			r.Header.Set("X-Amz-Content-Sha256", sha256Hex([]byte(describeBody)))
			return s.sign(t, r, describeBody)
		}},
		{"signed header with excess whitespace", func(t *testing.T) *http.Request {
			r := formPOST(describeBody)
			r.Header.Set("X-Amz-Meta-Note", "  a   b  c ")
			return s.sign(t, r, describeBody)
		}},
		{"presigned GET", func(t *testing.T) *http.Request {
			return s.presign(t, queryGET("Action=DescribeRegions&Version=2016-11-15&RegionName.1=us-east-1"), 5*time.Minute)
		}},
		{"presigned GET with values needing encoding", func(t *testing.T) *http.Request {
			return s.presign(t, queryGET("Action=DescribeKeyPairs&Version=2016-11-15&KeyName.1=a%20b%2A%C3%A9"), 5*time.Minute)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.req(t)
			ak, err := verifierAt(signTime).Verify(r, readBody(t, r))
			wantNoError(t, err)
			if ak != testAccessKey {
				t.Fatalf("Verify returned access key %q, want %q", ak, testAccessKey)
			}
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	s := defaultSigner()
	with := func(f func(*signer)) signer { c := s; f(&c); return c }
	tests := []struct {
		name     string
		now      time.Time
		req      func(t *testing.T) *http.Request
		body     *string // body the server read, when not the request's
		wantCode string
		wantMsg  string // substring of the message, optional
	}{
		{name: "wrong secret", wantCode: apierr.AuthFailure, req: func(t *testing.T) *http.Request {
			return with(func(c *signer) { c.secret = "not-the-secret" }).sign(t, formPOST(describeBody), describeBody)
		}},
		{name: "unknown access key", wantCode: apierr.AuthFailure, req: func(t *testing.T) *http.Request {
			return with(func(c *signer) { c.accessKey = "AKIAUNKNOWNKEY000000" }).sign(t, formPOST(describeBody), describeBody)
		}},
		{name: "presigned with wrong secret", wantCode: apierr.AuthFailure, req: func(t *testing.T) *http.Request {
			return with(func(c *signer) { c.secret = "x" }).presign(t, queryGET("Action=DescribeRegions&Version=2016-11-15"), time.Minute)
		}},
		{name: "presigned with unknown key", wantCode: apierr.AuthFailure, req: func(t *testing.T) *http.Request {
			return with(func(c *signer) { c.accessKey = "AKIAUNKNOWN" }).presign(t, queryGET("Action=DescribeRegions&Version=2016-11-15"), time.Minute)
		}},
		{name: "body tampered after signing (same length)", wantCode: apierr.AuthFailure, req: func(t *testing.T) *http.Request {
			r := s.sign(t, formPOST(describeBody), describeBody)
			tampered := strings.Replace(describeBody, "my+key", "my+kez", 1)
			r.Body = io.NopCloser(strings.NewReader(tampered))
			return r
		}},
		{name: "body tampered, X-Amz-Content-Sha256 still claims the signed hash", wantCode: apierr.AuthFailure, req: func(t *testing.T) *http.Request {
			r := formPOST(describeBody)
			r.Header.Set("X-Amz-Content-Sha256", sha256Hex([]byte(describeBody)))
			s.sign(t, r, describeBody)
			r.Body = io.NopCloser(strings.NewReader(strings.Replace(describeBody, "a%2A", "b%2A", 1)))
			return r
		}},
		{name: "body extended after signing", wantCode: apierr.AuthFailure, req: func(t *testing.T) *http.Request {
			r := s.sign(t, formPOST(describeBody), describeBody)
			r.Body = io.NopCloser(strings.NewReader(describeBody + "&DryRun=true"))
			return r
		}},
		{name: "signed Content-Type altered", wantCode: apierr.AuthFailure, req: func(t *testing.T) *http.Request {
			r := s.sign(t, formPOST(describeBody), describeBody)
			r.Header.Set("Content-Type", "text/plain")
			return r
		}},
		{name: "signed X-Amz-Date altered within skew", wantCode: apierr.AuthFailure, req: func(t *testing.T) *http.Request {
			r := s.sign(t, formPOST(describeBody), describeBody)
			r.Header.Set("X-Amz-Date", signTime.Add(time.Second).Format("20060102T150405Z"))
			return r
		}},
		{name: "Host altered", wantCode: apierr.AuthFailure, req: func(t *testing.T) *http.Request {
			r := s.sign(t, formPOST(describeBody), describeBody)
			r.Host = "evil.nubo.test"
			return r
		}},
		{name: "signed custom header altered", wantCode: apierr.AuthFailure, req: func(t *testing.T) *http.Request {
			r := formPOST(describeBody)
			r.Header.Set("X-Amz-Meta-Note", "one")
			s.sign(t, r, describeBody)
			r.Header.Set("X-Amz-Meta-Note", "two")
			return r
		}},
		{name: "signed header removed", wantCode: apierr.AuthFailure, req: func(t *testing.T) *http.Request {
			r := s.sign(t, formPOST(describeBody), describeBody)
			r.Header.Del("Content-Type")
			return r
		}},
		{name: "GET query tampered", wantCode: apierr.AuthFailure, req: func(t *testing.T) *http.Request {
			r := s.sign(t, queryGET(describeBody), "")
			r.URL.RawQuery = strings.Replace(r.URL.RawQuery, "DescribeKeyPairs", "DeleteKeyPair", 1)
			return r
		}},
		{name: "GET query parameter added", wantCode: apierr.AuthFailure, req: func(t *testing.T) *http.Request {
			r := s.sign(t, queryGET(describeBody), "")
			r.URL.RawQuery += "&DryRun=true"
			return r
		}},
		{name: "presigned query tampered", wantCode: apierr.AuthFailure, req: func(t *testing.T) *http.Request {
			r := s.presign(t, queryGET("Action=DescribeRegions&Version=2016-11-15"), time.Minute)
			r.URL.RawQuery = strings.Replace(r.URL.RawQuery, "DescribeRegions", "DescribeKeyPairs", 1)
			return r
		}},
		{name: "presigned X-Amz-Expires extended", wantCode: apierr.AuthFailure, req: func(t *testing.T) *http.Request {
			r := s.presign(t, queryGET("Action=DescribeRegions&Version=2016-11-15"), time.Minute)
			r.URL.RawQuery = strings.Replace(r.URL.RawQuery, "X-Amz-Expires=60", "X-Amz-Expires=6000", 1)
			return r
		}},
		{name: "wrong region in scope", wantCode: apierr.AuthFailure, wantMsg: "us-west-2", req: func(t *testing.T) *http.Request {
			return with(func(c *signer) { c.region = "us-west-2" }).sign(t, formPOST(describeBody), describeBody)
		}},
		{name: "wrong service in scope", wantCode: apierr.AuthFailure, wantMsg: "ec2", req: func(t *testing.T) *http.Request {
			return with(func(c *signer) { c.service = "sts" }).sign(t, formPOST(describeBody), describeBody)
		}},
		{name: "presigned wrong region", wantCode: apierr.AuthFailure, req: func(t *testing.T) *http.Request {
			return with(func(c *signer) { c.region = "eu-west-1" }).presign(t, queryGET("Action=DescribeRegions&Version=2016-11-15"), time.Minute)
		}},
		{name: "clock 16 minutes ahead of request", now: signTime.Add(16 * time.Minute), wantCode: apierr.RequestExpired, req: func(t *testing.T) *http.Request {
			return s.sign(t, formPOST(describeBody), describeBody)
		}},
		{name: "clock 16 minutes behind request", now: signTime.Add(-16 * time.Minute), wantCode: apierr.RequestExpired, req: func(t *testing.T) *http.Request {
			return s.sign(t, formPOST(describeBody), describeBody)
		}},
		{name: "clock a day ahead, wrong secret: expiry reported", now: signTime.Add(24 * time.Hour), wantCode: apierr.RequestExpired, req: func(t *testing.T) *http.Request {
			return with(func(c *signer) { c.secret = "x" }).sign(t, formPOST(describeBody), describeBody)
		}},
		{name: "presigned URL expired", now: signTime.Add(61 * time.Second), wantCode: apierr.RequestExpired, req: func(t *testing.T) *http.Request {
			return s.presign(t, queryGET("Action=DescribeRegions&Version=2016-11-15"), time.Minute)
		}},
		{name: "presigned URL with zero lifetime, a second later", now: signTime.Add(time.Second), wantCode: apierr.RequestExpired, req: func(t *testing.T) *http.Request {
			return s.presign(t, queryGET("Action=DescribeRegions&Version=2016-11-15"), 0)
		}},
		{name: "presigned URL dated 16 minutes in the future", now: signTime.Add(-16 * time.Minute), wantCode: apierr.RequestExpired, req: func(t *testing.T) *http.Request {
			return s.presign(t, queryGET("Action=DescribeRegions&Version=2016-11-15"), time.Hour)
		}},
		{name: "presigned without X-Amz-Expires", wantCode: apierr.AuthFailure, req: func(t *testing.T) *http.Request {
			return s.presign(t, queryGET("Action=DescribeRegions&Version=2016-11-15"), -1)
		}},
		{name: "presigned X-Amz-Expires over a week", wantCode: apierr.AuthFailure, req: func(t *testing.T) *http.Request {
			return s.presign(t, queryGET("Action=DescribeRegions&Version=2016-11-15"), 8*24*time.Hour)
		}},
		{name: "no authentication at all", wantCode: apierr.MissingAuthenticationToken, req: func(t *testing.T) *http.Request {
			return formPOST(describeBody)
		}},
		{name: "unsigned GET", wantCode: apierr.MissingAuthenticationToken, req: func(t *testing.T) *http.Request {
			return queryGET(describeBody)
		}},
		{name: "Authorization is the algorithm alone", wantCode: apierr.IncompleteSignature, req: func(t *testing.T) *http.Request {
			r := s.sign(t, formPOST(describeBody), describeBody)
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256")
			return r
		}},
		{name: "Authorization without Signature", wantCode: apierr.IncompleteSignature, req: func(t *testing.T) *http.Request {
			r := s.sign(t, formPOST(describeBody), describeBody)
			a := r.Header.Get("Authorization")
			r.Header.Set("Authorization", a[:strings.Index(a, ", Signature=")])
			return r
		}},
		{name: "Authorization without SignedHeaders", wantCode: apierr.IncompleteSignature, req: func(t *testing.T) *http.Request {
			r := s.sign(t, formPOST(describeBody), describeBody)
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+testAccessKey+"/20240517/us-east-1/ec2/aws4_request, Signature=abcdef")
			return r
		}},
		{name: "Authorization without Credential", wantCode: apierr.IncompleteSignature, req: func(t *testing.T) *http.Request {
			r := s.sign(t, formPOST(describeBody), describeBody)
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature=abcdef")
			return r
		}},
		{name: "Credential with too few parts", wantCode: apierr.IncompleteSignature, req: func(t *testing.T) *http.Request {
			r := s.sign(t, formPOST(describeBody), describeBody)
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+testAccessKey+"/20240517/us-east-1/ec2, SignedHeaders=host;x-amz-date, Signature=abcdef")
			return r
		}},
		{name: "Credential with wrong terminator", wantCode: apierr.IncompleteSignature, req: func(t *testing.T) *http.Request {
			r := s.sign(t, formPOST(describeBody), describeBody)
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+testAccessKey+"/20240517/us-east-1/ec2/aws5_request, SignedHeaders=host;x-amz-date, Signature=abcdef")
			return r
		}},
		{name: "Authorization garbage after algorithm", wantCode: apierr.IncompleteSignature, req: func(t *testing.T) *http.Request {
			r := s.sign(t, formPOST(describeBody), describeBody)
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 this is not a signature")
			return r
		}},
		{name: "X-Amz-Date missing", wantCode: apierr.IncompleteSignature, req: func(t *testing.T) *http.Request {
			r := s.sign(t, formPOST(describeBody), describeBody)
			r.Header.Del("X-Amz-Date")
			return r
		}},
		{name: "X-Amz-Date malformed", wantCode: apierr.IncompleteSignature, req: func(t *testing.T) *http.Request {
			r := s.sign(t, formPOST(describeBody), describeBody)
			r.Header.Set("X-Amz-Date", "yesterday")
			return r
		}},
		{name: "SigV2-style Authorization", wantCode: apierr.IncompleteSignature, req: func(t *testing.T) *http.Request {
			r := formPOST(describeBody)
			r.Header.Set("Authorization", "AWS "+testAccessKey+":frJIUN8DYpKDtOLCwo//yllqDzg=")
			return r
		}},
		{name: "unsupported algorithm in Authorization", wantCode: apierr.IncompleteSignature, req: func(t *testing.T) *http.Request {
			r := s.sign(t, formPOST(describeBody), describeBody)
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512", 1))
			return r
		}},
		{name: "unsupported X-Amz-Algorithm in presigned query", wantCode: apierr.IncompleteSignature, req: func(t *testing.T) *http.Request {
			r := s.presign(t, queryGET("Action=DescribeRegions&Version=2016-11-15"), time.Minute)
			r.URL.RawQuery = strings.Replace(r.URL.RawQuery, "X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Algorithm=AWS4-ECDSA-P256-SHA256", 1)
			return r
		}},
		{name: "presigned without X-Amz-Signature", wantCode: apierr.IncompleteSignature, req: func(t *testing.T) *http.Request {
			r := s.presign(t, queryGET("Action=DescribeRegions&Version=2016-11-15"), time.Minute)
			q := r.URL.Query()
			q.Del("X-Amz-Signature")
			r.URL.RawQuery = q.Encode()
			return r
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := tt.now
			if now.IsZero() {
				now = signTime
			}
			r := tt.req(t)
			ak, err := verifierAt(now).Verify(r, readBody(t, r))
			e := wantCode(t, err, tt.wantCode)
			if ak != "" {
				t.Errorf("Verify returned access key %q along with an error", ak)
			}
			if tt.wantMsg != "" && !strings.Contains(e.Message, tt.wantMsg) {
				t.Errorf("message %q does not mention %q", e.Message, tt.wantMsg)
			}
		})
	}
}

// The allowed clock skew is 15 minutes either way: inside it requests pass.
func TestVerifyClockSkewBoundary(t *testing.T) {
	s := defaultSigner()
	for _, skew := range []time.Duration{
		-16 * time.Minute, -15*time.Minute - time.Second, -14 * time.Minute, -time.Minute, 0,
		time.Minute, 14 * time.Minute, 15*time.Minute + time.Second, 16 * time.Minute,
	} {
		abs := skew
		if abs < 0 {
			abs = -abs
		}
		wantOK := abs <= 15*time.Minute
		t.Run("header "+skew.String(), func(t *testing.T) {
			r := s.sign(t, formPOST(describeBody), describeBody)
			ak, err := verifierAt(signTime.Add(skew)).Verify(r, readBody(t, r))
			if wantOK {
				wantNoError(t, err)
				if ak != testAccessKey {
					t.Fatalf("access key %q", ak)
				}
			} else {
				wantCode(t, err, apierr.RequestExpired)
			}
		})
	}
}

func TestVerifyPresignedLifetime(t *testing.T) {
	s := defaultSigner()
	tests := []struct {
		expires time.Duration
		elapsed time.Duration // server clock minus signing time
		ok      bool
	}{
		{time.Minute, 0, true},
		{time.Minute, 59 * time.Second, true},
		{time.Minute, 61 * time.Second, false},
		{time.Hour, 30 * time.Minute, true}, // a presigned URL outlives the 15-minute skew
		{time.Hour, 61 * time.Minute, false},
		{7 * 24 * time.Hour, 6 * 24 * time.Hour, true},
		{time.Hour, -14 * time.Minute, true}, // signed slightly in the future
		{time.Hour, -16 * time.Minute, false},
	}
	for _, tt := range tests {
		t.Run("expires "+tt.expires.String()+" after "+tt.elapsed.String(), func(t *testing.T) {
			r := s.presign(t, queryGET("Action=DescribeRegions&Version=2016-11-15"), tt.expires)
			ak, err := verifierAt(signTime.Add(tt.elapsed)).Verify(r, nil)
			if tt.ok {
				wantNoError(t, err)
				if ak != testAccessKey {
					t.Fatalf("access key %q", ak)
				}
			} else {
				wantCode(t, err, apierr.RequestExpired)
			}
		})
	}
}

// A Verifier with no Now uses the real clock.
func TestVerifyDefaultClock(t *testing.T) {
	s := defaultSigner()
	v := verifierAt(time.Time{})
	v.Now = nil

	s.at = time.Now()
	r := s.sign(t, formPOST(describeBody), describeBody)
	if _, err := v.Verify(r, readBody(t, r)); err != nil {
		t.Fatalf("request signed now: %v", err)
	}

	s.at = time.Now().Add(-time.Hour)
	r = s.sign(t, formPOST(describeBody), describeBody)
	_, err := v.Verify(r, readBody(t, r))
	wantCode(t, err, apierr.RequestExpired)
}

// Two keys with different secrets: each request verifies as its own key, and
// a request signed by one cannot be passed off as the other's.
func TestVerifyReturnsSigningKey(t *testing.T) {
	keys := map[string]string{"AKIAONE": "secret-one", "AKIATWO": "secret-two"}
	v := &ec2query.Verifier{Region: testRegion, Service: testService, Now: func() time.Time { return signTime },
		Secret: func(ak string) (string, bool) { s, ok := keys[ak]; return s, ok }}
	for ak, secret := range keys {
		s := signer{ak, secret, testRegion, testService, signTime}
		r := s.sign(t, formPOST(describeBody), describeBody)
		got, err := v.Verify(r, readBody(t, r))
		wantNoError(t, err)
		if got != ak {
			t.Errorf("got %q, want %q", got, ak)
		}
	}
	// Signed with one's secret but claiming the other's key.
	s := signer{"AKIATWO", "secret-one", testRegion, testService, signTime}
	r := s.sign(t, formPOST(describeBody), describeBody)
	_, err := v.Verify(r, readBody(t, r))
	wantCode(t, err, apierr.AuthFailure)
}
