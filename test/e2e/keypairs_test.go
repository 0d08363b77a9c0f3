package e2e

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
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/crypto/ssh"
)

func colonHex(b []byte) string {
	h := hex.EncodeToString(b)
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

func TestCreateKeyPairRSA(t *testing.T) {
	_, c := start(t)
	out, err := c.CreateKeyPair(ctx(t), &ec2.CreateKeyPairInput{KeyName: aws.String("k1"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeKeyPair,
			Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("infra")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode([]byte(aws.ToString(out.KeyMaterial)))
	if block == nil || block.Type != "RSA PRIVATE KEY" {
		t.Fatalf("key material is not an RSA PEM: %q", aws.ToString(out.KeyMaterial))
	}
	key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	// AWS: SHA-1 of the private key in PKCS#8 DER.
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(key)
	sum := sha1.Sum(pkcs8)
	if got, want := aws.ToString(out.KeyFingerprint), colonHex(sum[:]); got != want {
		t.Fatalf("fingerprint %s, want %s", got, want)
	}
	if !strings.HasPrefix(aws.ToString(out.KeyPairId), "key-") || len(aws.ToString(out.KeyPairId)) != 21 {
		t.Fatalf("key pair ID %q not in AWS form", aws.ToString(out.KeyPairId))
	}
	if len(out.Tags) != 1 || aws.ToString(out.Tags[0].Key) != "team" {
		t.Fatalf("tags %+v", out.Tags)
	}

	_, err = c.CreateKeyPair(ctx(t), &ec2.CreateKeyPairInput{KeyName: aws.String("k1")})
	wantAPIError(t, err, "InvalidKeyPair.Duplicate", 400)

	d, err := c.DescribeKeyPairs(ctx(t), &ec2.DescribeKeyPairsInput{KeyNames: []string{"k1"}, IncludePublicKey: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.KeyPairs) != 1 {
		t.Fatalf("want 1 key pair, got %d", len(d.KeyPairs))
	}
	kp := d.KeyPairs[0]
	if kp.KeyType != types.KeyTypeRsa || aws.ToString(kp.KeyFingerprint) != aws.ToString(out.KeyFingerprint) || kp.CreateTime == nil {
		t.Fatalf("described %+v", kp)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(aws.ToString(kp.PublicKey)))
	if err != nil {
		t.Fatalf("public key: %v", err)
	}
	want, _ := ssh.NewPublicKey(&key.PublicKey)
	if string(pub.Marshal()) != string(want.Marshal()) {
		t.Fatal("public key does not match the private key returned at creation")
	}
}

func TestCreateKeyPairED25519(t *testing.T) {
	_, c := start(t)
	out, err := c.CreateKeyPair(ctx(t), &ec2.CreateKeyPairInput{KeyName: aws.String("ed"), KeyType: types.KeyTypeEd25519})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey([]byte(aws.ToString(out.KeyMaterial)))
	if err != nil {
		t.Fatalf("parsing OpenSSH private key: %v", err)
	}
	sum := sha256.Sum256(signer.PublicKey().Marshal())
	if got, want := aws.ToString(out.KeyFingerprint), base64.StdEncoding.EncodeToString(sum[:]); got != want {
		t.Fatalf("fingerprint %s, want %s", got, want)
	}
	d, err := c.DescribeKeyPairs(ctx(t), &ec2.DescribeKeyPairsInput{Filters: []types.Filter{{Name: aws.String("key-type"), Values: []string{"ed25519"}}}})
	if err != nil || len(d.KeyPairs) != 1 || aws.ToString(d.KeyPairs[0].KeyName) != "ed" {
		t.Fatalf("describe by key-type: %v %+v", err, d)
	}
}

func TestImportKeyPair(t *testing.T) {
	_, c := start(t)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	rpub, _ := ssh.NewPublicKey(&rk.PublicKey)
	der, _ := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	md := md5.Sum(der)
	epub, _, _ := ed25519.GenerateKey(rand.Reader)
	esp, _ := ssh.NewPublicKey(epub)
	esum := sha256.Sum256(esp.Marshal())

	for _, tc := range []struct {
		name, material, fingerprint string
		keyType                     types.KeyType
	}{
		{"rsa-openssh", string(ssh.MarshalAuthorizedKey(rpub)), colonHex(md[:]), types.KeyTypeRsa},
		{"rsa-pem", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), colonHex(md[:]), types.KeyTypeRsa},
		{"ed-openssh", string(ssh.MarshalAuthorizedKey(esp)) + " me@laptop", base64.StdEncoding.EncodeToString(esum[:]), types.KeyTypeEd25519},
	} {
		out, err := c.ImportKeyPair(ctx(t), &ec2.ImportKeyPairInput{KeyName: aws.String(tc.name), PublicKeyMaterial: []byte(tc.material)})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if aws.ToString(out.KeyFingerprint) != tc.fingerprint {
			t.Fatalf("%s: fingerprint %s, want %s", tc.name, aws.ToString(out.KeyFingerprint), tc.fingerprint)
		}
		d, err := c.DescribeKeyPairs(ctx(t), &ec2.DescribeKeyPairsInput{KeyPairIds: []string{aws.ToString(out.KeyPairId)}})
		if err != nil || len(d.KeyPairs) != 1 || d.KeyPairs[0].KeyType != tc.keyType {
			t.Fatalf("%s: describe %v %+v", tc.name, err, d)
		}
	}
	_, err := c.ImportKeyPair(ctx(t), &ec2.ImportKeyPairInput{KeyName: aws.String("bad"), PublicKeyMaterial: []byte("ssh-rsa not-a-key")})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	_, err = c.ImportKeyPair(ctx(t), &ec2.ImportKeyPairInput{KeyName: aws.String("rsa-openssh"), PublicKeyMaterial: ssh.MarshalAuthorizedKey(rpub)})
	wantAPIError(t, err, "InvalidKeyPair.Duplicate", 400)
}

func TestDeleteKeyPair(t *testing.T) {
	_, c := start(t)
	out, err := c.CreateKeyPair(ctx(t), &ec2.CreateKeyPairInput{KeyName: aws.String("gone"), KeyType: types.KeyTypeEd25519})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.DeleteKeyPair(ctx(t), &ec2.DeleteKeyPairInput{KeyName: aws.String("gone"), DryRun: aws.Bool(true)})
	wantAPIError(t, err, "DryRunOperation", 412)
	if _, err := c.DescribeKeyPairs(ctx(t), &ec2.DescribeKeyPairsInput{KeyNames: []string{"gone"}}); err != nil {
		t.Fatalf("dry run deleted the key pair: %v", err)
	}
	del, err := c.DeleteKeyPair(ctx(t), &ec2.DeleteKeyPairInput{KeyName: aws.String("gone")})
	if err != nil || aws.ToString(del.KeyPairId) != aws.ToString(out.KeyPairId) {
		t.Fatalf("delete: %v %+v", err, del)
	}
	_, err = c.DescribeKeyPairs(ctx(t), &ec2.DescribeKeyPairsInput{KeyNames: []string{"gone"}})
	wantAPIError(t, err, "InvalidKeyPair.NotFound", 400)
	// EC2 answers success for a name that does not exist…
	if _, err := c.DeleteKeyPair(ctx(t), &ec2.DeleteKeyPairInput{KeyName: aws.String("gone")}); err != nil {
		t.Fatalf("deleting a missing name: %v", err)
	}
	// …and NotFound for an ID that does not.
	_, err = c.DeleteKeyPair(ctx(t), &ec2.DeleteKeyPairInput{KeyPairId: out.KeyPairId})
	wantAPIError(t, err, "InvalidKeyPair.NotFound", 400)
	_, err = c.DeleteKeyPair(ctx(t), &ec2.DeleteKeyPairInput{})
	wantAPIError(t, err, "MissingParameter", 400)
	// The name is free again.
	if _, err := c.CreateKeyPair(ctx(t), &ec2.CreateKeyPairInput{KeyName: aws.String("gone"), KeyType: types.KeyTypeEd25519}); err != nil {
		t.Fatalf("re-creating a deleted name: %v", err)
	}
}

func TestKeyPairValidation(t *testing.T) {
	_, c := start(t)
	for _, tc := range []struct {
		in   *ec2.CreateKeyPairInput
		code string
	}{
		{&ec2.CreateKeyPairInput{KeyName: aws.String(strings.Repeat("x", 256))}, "InvalidParameterValue"},
		{&ec2.CreateKeyPairInput{KeyName: aws.String("k"), KeyType: "dsa"}, "InvalidParameterValue"},
		{&ec2.CreateKeyPairInput{KeyName: aws.String("k"), KeyFormat: "der"}, "InvalidParameterValue"},
		{&ec2.CreateKeyPairInput{KeyName: aws.String("k"), TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{{Key: aws.String("a"), Value: aws.String("b")}}}}}, "InvalidParameterValue"},
		{&ec2.CreateKeyPairInput{KeyName: aws.String("k"), TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeKeyPair, Tags: []types.Tag{{Key: aws.String("aws:x"), Value: aws.String("b")}}}}}, "InvalidParameterValue"},
	} {
		_, err := c.CreateKeyPair(ctx(t), tc.in)
		wantAPIError(t, err, tc.code, 400)
	}
	d, err := c.DescribeKeyPairs(ctx(t), &ec2.DescribeKeyPairsInput{})
	if err != nil || len(d.KeyPairs) != 0 {
		t.Fatalf("a rejected create left state behind: %v %+v", err, d.KeyPairs)
	}
	_, err = c.DescribeKeyPairs(ctx(t), &ec2.DescribeKeyPairsInput{KeyPairIds: []string{"key-zz"}})
	wantAPIError(t, err, "InvalidKeyPairId.Malformed", 400)
}
