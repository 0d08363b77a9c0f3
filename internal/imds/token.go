package imds

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"time"
)

// IMDSv2's headers and bounds.
const (
	TokenHeader    = "X-aws-ec2-metadata-token"
	TokenTTLHeader = "X-aws-ec2-metadata-token-ttl-seconds"
	MaxTokenTTL    = 21600 // seconds: six hours
)

const tokenVersion = 1

// Tokens are stateless, so any server of the deployment (or the same one
// after a restart) accepts them: version ‖ expiry (Unix seconds) ‖
// HMAC-SHA256(secret, instance ID ‖ version ‖ expiry). The instance ID in
// the MAC binds a token to the instance that asked for it.
func newToken(secret []byte, instanceID string, expires time.Time) string {
	payload := make([]byte, 9, 9+sha256.Size)
	payload[0] = tokenVersion
	binary.BigEndian.PutUint64(payload[1:], uint64(expires.Unix()))
	return base64.StdEncoding.EncodeToString(append(payload, tokenMAC(secret, instanceID, payload)...))
}

// checkToken returns how long token stays valid for instanceID at now;
// ok is false when it is malformed, forged, another instance's or expired.
func checkToken(secret []byte, instanceID, token string, now time.Time) (left time.Duration, ok bool) {
	b, err := base64.StdEncoding.DecodeString(token)
	if err != nil || len(b) != 9+sha256.Size || b[0] != tokenVersion {
		return 0, false
	}
	if !hmac.Equal(b[9:], tokenMAC(secret, instanceID, b[:9])) {
		return 0, false
	}
	left = time.Unix(int64(binary.BigEndian.Uint64(b[1:9])), 0).Sub(now)
	return left, left > 0
}

func tokenMAC(secret []byte, instanceID string, payload []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(instanceID))
	m.Write([]byte{0})
	m.Write(payload)
	return m.Sum(nil)
}
