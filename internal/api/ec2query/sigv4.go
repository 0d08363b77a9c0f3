package ec2query

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"nubo/internal/apierr"
)

const (
	sigAlgorithm  = "AWS4-HMAC-SHA256"
	amzDateFormat = "20060102T150405Z"
	maxClockSkew  = 15 * time.Minute
	unsigned      = "UNSIGNED-PAYLOAD"
)

// Verifier checks AWS Signature Version 4 on incoming requests, in both the
// Authorization-header form and the presigned query-string form.
type Verifier struct {
	Region  string
	Service string
	// Secret returns the secret access key of an access key ID.
	Secret func(accessKeyID string) (secret string, ok bool)
	Now    func() time.Time
}

// sigInput is what a request says about its own signature.
type sigInput struct {
	accessKey, date, region, service string
	signedHeaders                    []string
	signature                        string
	amzDate                          time.Time
	rawDate                          string        // as sent; it is what was signed
	expires                          time.Duration // presigned only
	presigned                        bool
}

// Verify authenticates r (whose body has been read into body) and returns the
// access key ID that signed it.
func (v *Verifier) Verify(r *http.Request, body []byte) (string, error) {
	in, err := parseSignature(r)
	if err != nil {
		return "", err
	}
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	if in.presigned {
		if now.After(in.amzDate.Add(in.expires)) || in.amzDate.Sub(now) > maxClockSkew {
			return "", apierr.New(apierr.RequestExpired, "Request has expired.")
		}
	} else if d := now.Sub(in.amzDate); d > maxClockSkew || d < -maxClockSkew {
		return "", apierr.New(apierr.RequestExpired,
			"Request has expired. Timestamp date is %s; the server's time is %s (allowed skew 15 minutes).",
			in.amzDate.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if in.date != in.amzDate.Format("20060102") {
		return "", apierr.New(apierr.AuthFailure, "Credential date %s does not match the request date.", in.date)
	}
	if in.service != v.Service {
		return "", apierr.New(apierr.AuthFailure, "Credential should be scoped to correct service: '%s'.", v.Service)
	}
	if in.region != v.Region {
		return "", apierr.New(apierr.AuthFailure, "Credential should be scoped to a valid region, not '%s'. This endpoint serves '%s'.", in.region, v.Region)
	}
	secret, ok := v.Secret(in.accessKey)
	if !ok {
		return "", apierr.New(apierr.AuthFailure, "AWS was not able to validate the provided access credentials")
	}
	for _, hash := range payloadHashes(r, body, in.presigned) {
		want := signature(secret, in, canonicalRequest(r, in, hash))
		if hmac.Equal([]byte(want), []byte(in.signature)) {
			return in.accessKey, nil
		}
	}
	return "", apierr.New(apierr.AuthFailure, "AWS was not able to validate the provided access credentials")
}

func parseSignature(r *http.Request) (sigInput, error) {
	var in sigInput
	var cred, signed, date string
	if auth := r.Header.Get("Authorization"); auth != "" {
		alg, rest, _ := strings.Cut(auth, " ")
		if alg != sigAlgorithm {
			return in, apierr.New(apierr.IncompleteSignature, "Unsupported authorization type %q; only %s is accepted.", alg, sigAlgorithm)
		}
		for _, part := range strings.Split(rest, ",") {
			k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
			switch k {
			case "Credential":
				cred = val
			case "SignedHeaders":
				signed = val
			case "Signature":
				in.signature = val
			}
		}
		date = r.Header.Get("X-Amz-Date")
		if date == "" {
			date = r.Header.Get("Date")
		}
	} else if q := r.URL.Query(); q.Get("X-Amz-Algorithm") != "" {
		if q.Get("X-Amz-Algorithm") != sigAlgorithm {
			return in, apierr.New(apierr.IncompleteSignature, "Unsupported X-Amz-Algorithm %q; only %s is accepted.", q.Get("X-Amz-Algorithm"), sigAlgorithm)
		}
		in.presigned = true
		cred, signed, in.signature, date = q.Get("X-Amz-Credential"), q.Get("X-Amz-SignedHeaders"), q.Get("X-Amz-Signature"), q.Get("X-Amz-Date")
		secs, err := strconv.Atoi(q.Get("X-Amz-Expires"))
		if err != nil || secs < 0 || secs > 7*24*3600 {
			return in, apierr.New(apierr.AuthFailure, "X-Amz-Expires must be a number of seconds between 0 and 604800.")
		}
		in.expires = time.Duration(secs) * time.Second
	} else {
		return in, apierr.New(apierr.MissingAuthenticationToken, "Request is missing Authentication Token: sign it with AWS Signature Version 4.")
	}
	if cred == "" || signed == "" || in.signature == "" || date == "" {
		return in, apierr.New(apierr.IncompleteSignature, "The request signature must contain Credential, SignedHeaders, Signature and an X-Amz-Date.")
	}
	parts := strings.Split(cred, "/")
	if len(parts) != 5 || parts[4] != "aws4_request" {
		return in, apierr.New(apierr.IncompleteSignature, "Credential %q is not of the form KEY/DATE/REGION/SERVICE/aws4_request.", cred)
	}
	in.accessKey, in.date, in.region, in.service = parts[0], parts[1], parts[2], parts[3]
	in.signedHeaders = strings.Split(signed, ";")
	if !slices.Contains(in.signedHeaders, "host") {
		return in, apierr.New(apierr.IncompleteSignature, "SignedHeaders must include host.")
	}
	t, err := time.Parse(amzDateFormat, date)
	if err != nil {
		if t, err = http.ParseTime(date); err != nil {
			return in, apierr.New(apierr.IncompleteSignature, "X-Amz-Date %q is not in the form %s.", date, amzDateFormat)
		}
	}
	in.amzDate, in.rawDate = t.UTC(), date
	return in, nil
}

// payloadHashes lists the payload hashes the signer may have used.
func payloadHashes(r *http.Request, body []byte, presigned bool) []string {
	sum := sha256.Sum256(body)
	actual := hex.EncodeToString(sum[:])
	switch h := r.Header.Get("X-Amz-Content-Sha256"); {
	case h == unsigned:
		return []string{unsigned}
	case h != "":
		if h != actual {
			return nil // the body is not what was signed
		}
		return []string{h}
	case presigned:
		return []string{actual, unsigned}
	}
	return []string{actual}
}

func canonicalRequest(r *http.Request, in sigInput, payloadHash string) string {
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	var b strings.Builder
	b.WriteString(r.Method + "\n" + path + "\n" + canonicalQuery(r.URL.RawQuery, in.presigned) + "\n")
	for _, h := range in.signedHeaders {
		b.WriteString(h + ":" + headerValue(r, h) + "\n")
	}
	b.WriteString("\n" + strings.Join(in.signedHeaders, ";") + "\n" + payloadHash)
	return b.String()
}

func headerValue(r *http.Request, name string) string {
	switch name {
	case "host":
		return r.Host
	case "content-length":
		if r.Header.Get("Content-Length") == "" && r.ContentLength >= 0 {
			return strconv.FormatInt(r.ContentLength, 10)
		}
	}
	vals := r.Header.Values(name)
	for i, v := range vals {
		vals[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(vals, ",")
}

func canonicalQuery(raw string, presigned bool) string {
	type pair struct{ k, v string }
	var pairs []pair
	for _, kv := range strings.Split(raw, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		k, _ = url.QueryUnescape(k)
		v, _ = url.QueryUnescape(v)
		if presigned && k == "X-Amz-Signature" {
			continue
		}
		pairs = append(pairs, pair{uriEncode(k), uriEncode(v)})
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	parts := make([]string, len(pairs))
	for i, p := range pairs {
		parts[i] = p.k + "=" + p.v
	}
	return strings.Join(parts, "&")
}

// uriEncode is SigV4's strict RFC 3986 encoding: only unreserved characters pass.
func uriEncode(s string) string {
	const hexdig = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hexdig[c>>4])
			b.WriteByte(hexdig[c&15])
		}
	}
	return b.String()
}

func signature(secret string, in sigInput, canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	scope := in.date + "/" + in.region + "/" + in.service + "/aws4_request"
	toSign := sigAlgorithm + "\n" + in.rawDate + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
	key := hmacSHA256([]byte("AWS4"+secret), in.date)
	key = hmacSHA256(key, in.region)
	key = hmacSHA256(key, in.service)
	key = hmacSHA256(key, "aws4_request")
	return hex.EncodeToString(hmacSHA256(key, toSign))
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}
