package imds

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/smallstep/pkcs7"

	"nubo/internal/store"
)

// Identity signs a region's instance identity documents: one RSA 2048 key
// and its self-signed certificate, which operators get with
// `nubo identity-cert` to verify documents (AWS publishes its regions'
// certificates instead).
type Identity struct {
	Key     *rsa.PrivateKey
	Cert    *x509.Certificate
	CertPEM []byte
}

// identityRecord is how an Identity is stored.
type identityRecord struct {
	Key  string `json:"key"`  // PKCS#8, PEM
	Cert string `json:"cert"` // PEM
}

// IdentityKey is where a region's identity lives in the store.
func IdentityKey(region string) string { return store.Root + "identity/" + region }

// LoadIdentity reads the region's identity, making it on first use. Servers
// racing to make it agree: only the first one's is stored, and the others
// read it back.
func LoadIdentity(ctx context.Context, st *store.Store, region string) (*Identity, error) {
	key := IdentityKey(region)
	var rec identityRecord
	_, err := st.Get(ctx, key, &rec)
	if errors.Is(err, store.ErrNotFound) {
		if rec, err = newIdentity(region, time.Now()); err != nil {
			return nil, err
		}
		err = st.Create(ctx, map[string]any{key: rec})
		if errors.Is(err, store.ErrExists) {
			_, err = st.Get(ctx, key, &rec)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("identity of %s: %w", region, err)
	}
	return parseIdentity(rec)
}

func newIdentity(region string, now time.Time) (identityRecord, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return identityRecord{}, fmt.Errorf("generating identity key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return identityRecord{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			Organization: []string{"nubo"},
			CommonName:   "nubo instance identity " + region,
		},
		// As long-lived as AWS's own: documents are verified for years.
		NotBefore:             now.Add(-time.Hour).UTC(),
		NotAfter:              now.AddDate(100, 0, 0).UTC(),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return identityRecord{}, fmt.Errorf("making identity certificate: %w", err)
	}
	p8, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return identityRecord{}, err
	}
	return identityRecord{
		Key:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8})),
		Cert: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
	}, nil
}

func parseIdentity(rec identityRecord) (*Identity, error) {
	kb, _ := pem.Decode([]byte(rec.Key))
	cb, _ := pem.Decode([]byte(rec.Cert))
	if kb == nil || cb == nil {
		return nil, errors.New("identity record: not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("identity key: %w", err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("identity key: %T, not RSA", k)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("identity certificate: %w", err)
	}
	return &Identity{Key: rk, Cert: cert, CertPEM: []byte(rec.Cert)}, nil
}

// Signature is the document's /signature: RSA PKCS #1 v1.5 over its
// SHA-256, base64 (verify with openssl dgst -sha256 -verify).
func (id *Identity) Signature(doc []byte) (string, error) {
	sum := sha256.Sum256(doc)
	sig, err := rsa.SignPKCS1v15(rand.Reader, id.Key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("signing identity document: %w", err)
	}
	return wrap76(base64.StdEncoding.EncodeToString(sig)), nil
}

// PKCS7 is the document's /pkcs7 and /rsa2048: PKCS #7 signed data holding
// the document, SHA-256 with RSA, as the body of a PEM block without its
// armour lines (verify with openssl smime -verify -inform PEM after adding
// them, as AWS's instructions say).
func (id *Identity) PKCS7(doc []byte) (string, error) {
	sd, err := pkcs7.NewSignedData(doc)
	if err != nil {
		return "", fmt.Errorf("signing identity document: %w", err)
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.AddSigner(id.Cert, id.Key, pkcs7.SignerInfoConfig{}); err != nil {
		return "", fmt.Errorf("signing identity document: %w", err)
	}
	der, err := sd.Finish()
	if err != nil {
		return "", fmt.Errorf("signing identity document: %w", err)
	}
	return wrap76(base64.StdEncoding.EncodeToString(der)), nil
}

// wrap76 breaks base64 into lines of 76 characters, as EC2 serves its
// signatures.
func wrap76(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76])
		b.WriteByte('\n')
		s = s[76:]
	}
	b.WriteString(s)
	return b.String()
}

// document is the instance identity document, laid out byte for byte as
// EC2 serves it (keys in EC2's order, " : ", two-space indent), since its
// signatures are over these bytes.
type document struct {
	AccountID, Architecture, AvailabilityZone string
	ImageID, InstanceID, InstanceType         string
	PendingTime                               time.Time
	PrivateIP, Region                         string
}

func (d document) bytes() []byte {
	str := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	fields := []struct{ k, v string }{
		{"accountId", str(d.AccountID)},
		{"architecture", str(d.Architecture)},
		{"availabilityZone", str(d.AvailabilityZone)},
		{"billingProducts", "null"},
		{"devpayProductCodes", "null"},
		{"marketplaceProductCodes", "null"},
		{"imageId", str(d.ImageID)},
		{"instanceId", str(d.InstanceID)},
		{"instanceType", str(d.InstanceType)},
		{"kernelId", "null"},
		{"pendingTime", str(d.PendingTime.UTC().Format("2006-01-02T15:04:05Z"))},
		{"privateIp", str(d.PrivateIP)},
		{"ramdiskId", "null"},
		{"region", str(d.Region)},
		{"version", str("2017-09-30")},
	}
	var b strings.Builder
	b.WriteString("{\n")
	for i, f := range fields {
		fmt.Fprintf(&b, "  %q : %s", f.k, f.v)
		if i < len(fields)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString("}")
	return []byte(b.String())
}
