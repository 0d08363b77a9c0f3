package keypair

import (
	"crypto/ed25519"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Material is a new key: the private key for the caller (returned once, never
// stored), the public key nubo keeps, and AWS's fingerprint of it.
type Material struct {
	PrivatePEM  string
	PublicKey   string // OpenSSH authorized_keys form
	Fingerprint string
}

// Generate makes a key of type "rsa" (2048 bits, PKCS#1 PEM) or "ed25519"
// (OpenSSH PEM), fingerprinted the way CreateKeyPair does: SHA-1 of the
// PKCS#8 private key for RSA, SHA-256 of the public key for ed25519.
func Generate(keyType string) (Material, error) {
	switch keyType {
	case "rsa":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return Material{}, fmt.Errorf("generating rsa key: %w", err)
		}
		pkcs8, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return Material{}, fmt.Errorf("encoding rsa key: %w", err)
		}
		sum := sha1.Sum(pkcs8)
		pub, err := ssh.NewPublicKey(&k.PublicKey)
		if err != nil {
			return Material{}, err
		}
		return Material{
			PrivatePEM:  strings.TrimSpace(string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))),
			PublicKey:   authorizedKey(pub),
			Fingerprint: colonHex(sum[:]),
		}, nil
	case "ed25519":
		pubRaw, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return Material{}, fmt.Errorf("generating ed25519 key: %w", err)
		}
		block, err := ssh.MarshalPrivateKey(priv, "")
		if err != nil {
			return Material{}, fmt.Errorf("encoding ed25519 key: %w", err)
		}
		pub, err := ssh.NewPublicKey(pubRaw)
		if err != nil {
			return Material{}, err
		}
		return Material{
			PrivatePEM:  strings.TrimSpace(string(pem.EncodeToMemory(block))),
			PublicKey:   authorizedKey(pub),
			Fingerprint: sha256Fingerprint(pub),
		}, nil
	}
	return Material{}, fmt.Errorf("unsupported key type %q", keyType)
}

// ParsePublic reads an imported public key (OpenSSH authorized_keys line,
// RFC 4716 SSH2 file, or PEM/DER SubjectPublicKeyInfo) and returns its type and
// ImportKeyPair's fingerprint: MD5 of the DER public key for RSA, SHA-256 of the
// public key for ed25519.
func ParsePublic(material []byte) (keyType string, m Material, err error) {
	pub, err := parsePublicKey(material)
	if err != nil {
		return "", Material{}, err
	}
	switch pub.Type() {
	case ssh.KeyAlgoRSA:
		cpk, ok := pub.(ssh.CryptoPublicKey)
		if !ok {
			return "", Material{}, fmt.Errorf("rsa key without crypto form")
		}
		der, err := x509.MarshalPKIXPublicKey(cpk.CryptoPublicKey())
		if err != nil {
			return "", Material{}, err
		}
		if rk, ok := cpk.CryptoPublicKey().(*rsa.PublicKey); ok && rk.N.BitLen() < 1024 {
			return "", Material{}, fmt.Errorf("rsa keys must be at least 1024 bits, this one has %d", rk.N.BitLen())
		}
		sum := md5.Sum(der)
		return "rsa", Material{PublicKey: authorizedKey(pub), Fingerprint: colonHex(sum[:])}, nil
	case ssh.KeyAlgoED25519:
		return "ed25519", Material{PublicKey: authorizedKey(pub), Fingerprint: sha256Fingerprint(pub)}, nil
	}
	return "", Material{}, fmt.Errorf("key type %s is not supported: import an rsa or ed25519 key", pub.Type())
}

func parsePublicKey(material []byte) (ssh.PublicKey, error) {
	text := strings.TrimSpace(string(material))
	if pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(text)); err == nil {
		return pub, nil
	}
	if strings.HasPrefix(text, "---- BEGIN SSH2 PUBLIC KEY ----") {
		return parseRFC4716(text)
	}
	if block, _ := pem.Decode([]byte(text)); block != nil {
		material = block.Bytes
	} else if der, err := base64.StdEncoding.DecodeString(text); err == nil {
		material = der
	}
	key, err := x509.ParsePKIXPublicKey(material)
	if err != nil {
		return nil, fmt.Errorf("key is not in OpenSSH, RFC 4716 or DER/PEM public key format")
	}
	return ssh.NewPublicKey(key)
}

// parseRFC4716 reads the "---- BEGIN SSH2 PUBLIC KEY ----" format: headers
// (with backslash continuations) then the base64 key blob.
func parseRFC4716(text string) (ssh.PublicKey, error) {
	var b64 strings.Builder
	inHeader := false
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "----"):
			continue
		case inHeader:
			inHeader = strings.HasSuffix(line, "\\")
		case strings.Contains(line, ":"):
			inHeader = strings.HasSuffix(line, "\\")
		default:
			b64.WriteString(line)
		}
	}
	blob, err := base64.StdEncoding.DecodeString(b64.String())
	if err != nil {
		return nil, fmt.Errorf("decoding SSH2 public key: %w", err)
	}
	return ssh.ParsePublicKey(blob)
}

func authorizedKey(pub ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
}

func sha256Fingerprint(pub ssh.PublicKey) string {
	sum := sha256.Sum256(pub.Marshal())
	return base64.StdEncoding.EncodeToString(sum[:])
}

func colonHex(b []byte) string {
	h := hex.EncodeToString(b)
	parts := make([]string, 0, len(b))
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}
