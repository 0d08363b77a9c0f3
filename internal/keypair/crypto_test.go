package keypair

import (
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// Vectors made with OpenSSH and OpenSSL, as AWS documents its fingerprints:
//
//	openssl rsa -in k.pem -pubout -outform DER | openssl md5 -c   (imported RSA)
//	ssh-keygen -l -E sha256 -f k.pub                              (ed25519)
const (
	rsaPub    = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC4xEswtmTbZHv8Lrvccf2tUAlzfM7c6Yq5QDWAxKn9Vs75qPhmhHYK0H0ipQk/6LlUO4E9jTuk+MZQBFxmQ12mzpcXr22omg2oZvp1AqU46Zvx2XojAET62PUDJ0kBbAl3ZYK4beJJKLg8xS7Q7LCrf/XBB+cBIuCGvIAkZvvPMzXmjmrFE83CoM1+VB9DBjrg2+avGUT319KC170N2krGZcCNolZ4QkRpVmkaw+ad7w4Lwte+FObBegAdZTm04GXxhA0qd2AcG4SttUiIWzT9hGANI3WrPjGw8mRbmPSthKC/XSurF2bhOsYzyj9zm76+PRXFHkUQ5Ox2g7Iw73xf"
	rsaMD5    = "44:0f:07:28:f5:53:25:5a:97:84:6d:54:de:98:61:07"
	rsaRFC    = "---- BEGIN SSH2 PUBLIC KEY ----\nComment: \"2048-bit RSA, converted by root@vm from \\\nOpenSSH\"\nAAAAB3NzaC1yc2EAAAADAQABAAABAQC4xEswtmTbZHv8Lrvccf2tUAlzfM7c6Yq5QDWAxK\nn9Vs75qPhmhHYK0H0ipQk/6LlUO4E9jTuk+MZQBFxmQ12mzpcXr22omg2oZvp1AqU46Zvx\n2XojAET62PUDJ0kBbAl3ZYK4beJJKLg8xS7Q7LCrf/XBB+cBIuCGvIAkZvvPMzXmjmrFE8\n3CoM1+VB9DBjrg2+avGUT319KC170N2krGZcCNolZ4QkRpVmkaw+ad7w4Lwte+FObBegAd\nZTm04GXxhA0qd2AcG4SttUiIWzT9hGANI3WrPjGw8mRbmPSthKC/XSurF2bhOsYzyj9zm7\n6+PRXFHkUQ5Ox2g7Iw73xf\n---- END SSH2 PUBLIC KEY ----\n"
	edPub     = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGG13oZnTbzkHwN4TsoVeUdG0gya+D2upWieHVZ1vHlM test"
	edSHA256  = "902/mk6gc64Djx3GjReiEK9+k3wJI1XeJupetatk11w="
	rsaNoComm = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC4xEswtmTbZHv8Lrvccf2tUAlzfM7c6Yq5QDWAxKn9Vs75qPhmhHYK0H0ipQk/6LlUO4E9jTuk+MZQBFxmQ12mzpcXr22omg2oZvp1AqU46Zvx2XojAET62PUDJ0kBbAl3ZYK4beJJKLg8xS7Q7LCrf/XBB+cBIuCGvIAkZvvPMzXmjmrFE83CoM1+VB9DBjrg2+avGUT319KC170N2krGZcCNolZ4QkRpVmkaw+ad7w4Lwte+FObBegAdZTm04GXxhA0qd2AcG4SttUiIWzT9hGANI3WrPjGw8mRbmPSthKC/XSurF2bhOsYzyj9zm76+PRXFHkUQ5Ox2g7Iw73xf"
)

func TestParsePublicFingerprints(t *testing.T) {
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(rsaPub))
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(pub.(ssh.CryptoPublicKey).CryptoPublicKey())
	pemPub := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))

	for _, tc := range []struct {
		name, material, keyType, fingerprint string
	}{
		{"openssh rsa", rsaPub, "rsa", rsaMD5},
		{"openssh rsa with comment and newline", rsaPub + " me@host\n", "rsa", rsaMD5},
		{"rfc4716 rsa", rsaRFC, "rsa", rsaMD5},
		{"pem rsa", pemPub, "rsa", rsaMD5},
		{"base64 der rsa", base64.StdEncoding.EncodeToString(der), "rsa", rsaMD5},
		{"openssh ed25519", edPub, "ed25519", edSHA256},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kt, m, err := ParsePublic([]byte(tc.material))
			if err != nil {
				t.Fatal(err)
			}
			if kt != tc.keyType || m.Fingerprint != tc.fingerprint {
				t.Fatalf("got %s %s, want %s %s", kt, m.Fingerprint, tc.keyType, tc.fingerprint)
			}
			if strings.Contains(m.PublicKey, "\n") || !strings.HasPrefix(m.PublicKey, "ssh-") {
				t.Fatalf("public key not in authorized_keys form: %q", m.PublicKey)
			}
		})
	}
	// The stored public key drops the caller's comment.
	_, m, _ := ParsePublic([]byte(rsaPub + " me@host"))
	if m.PublicKey != rsaNoComm {
		t.Fatalf("stored public key %q", m.PublicKey)
	}
}

func TestParsePublicRejects(t *testing.T) {
	for name, material := range map[string]string{
		"empty":        "",
		"garbage":      "hello world",
		"private key":  "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----",
		"truncated":    rsaPub[:100],
		"ecdsa is not": "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQEezOmxkZMy7opKgwFB9nkt5YRrYMjNuG5N87uRgg6CLrbo5wAdT/y6v0mKV0U2w0WZ2YB/++Tpockg=",
	} {
		if _, _, err := ParsePublic([]byte(material)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestGenerate(t *testing.T) {
	m, err := Generate("rsa")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode([]byte(m.PrivatePEM))
	key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		t.Fatalf("rsa private key is not PKCS#1: %v", err)
	}
	if key.N.BitLen() != 2048 {
		t.Fatalf("rsa key has %d bits", key.N.BitLen())
	}
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(key)
	sum := sha1.Sum(pkcs8)
	if m.Fingerprint != colonHex(sum[:]) {
		t.Fatalf("rsa fingerprint %s is not SHA-1 of PKCS#8", m.Fingerprint)
	}

	e, err := Generate("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey([]byte(e.PrivatePEM))
	if err != nil {
		t.Fatal(err)
	}
	// Created and imported ed25519 keys share one fingerprint scheme.
	_, imported, err := ParsePublic([]byte(e.PublicKey))
	if err != nil || imported.Fingerprint != e.Fingerprint || string(ssh.MarshalAuthorizedKey(signer.PublicKey())) != e.PublicKey+"\n" {
		t.Fatalf("ed25519: %v %s vs %s", err, imported.Fingerprint, e.Fingerprint)
	}
	if _, err := Generate("dsa"); err == nil {
		t.Fatal("dsa accepted")
	}
}
