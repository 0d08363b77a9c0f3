package eic

import (
	"crypto/rsa"
	"regexp"
	"strings"
	"unicode"

	"golang.org/x/crypto/ssh"

	"nubo/internal/apierr"
)

// The service model's constraints on the parameters.
var (
	instanceIDRE = regexp.MustCompile(`^i-[a-f0-9]+$`)
	zoneRE       = regexp.MustCompile(`^(\w+-){2,3}\d+\w+$`)
	// userRE is the model's pattern; its second branch (a name starting with
	// digits, as some directories have) needs a letter or punctuation after
	// them, so "1000" alone is refused.
	userRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9@._-]{0,30}[A-Za-z0-9$_-]?$|^[0-9]{1,31}[A-Za-z@._-][A-Za-z0-9@._-]*[A-Za-z0-9$_-]?$`)
)

const (
	minKeyChars = 80 // an ssh-ed25519 key without a comment
	maxKeyChars = 4096
	minRSABits  = 2048
)

func checkInstanceID(id string) error {
	if len(id) < 10 || len(id) > 32 || !instanceIDRE.MatchString(id) {
		return apierr.New(InvalidArgs, "Instance ID %q is not valid: expected i- and 8 to 30 hexadecimal digits.", id)
	}
	return nil
}

// validUser reports whether name is an OS user name the model accepts: 1 to
// 32 characters, never a slash (it is a path segment in the store and in
// the metadata service).
func validUser(name string) bool {
	return len(name) >= 1 && len(name) <= 32 && userRE.MatchString(name)
}

func checkUser(name string) error {
	if !validUser(name) {
		return apierr.New(InvalidArgs, "InstanceOSUser %q is not a valid user name.", name)
	}
	return nil
}

func checkZone(z string) error {
	if len(z) < 6 || len(z) > 32 || !zoneRE.MatchString(z) {
		return apierr.New(InvalidArgs, "AvailabilityZone %q is not a valid Availability Zone name.", z)
	}
	return nil
}

// parseKey checks that s is one OpenSSH public key of a type EC2 accepts and
// returns it as one authorized_keys line: type, base64 and comment, no
// options. The line ends up in sshd's authorized keys, so nothing that
// could add a line or an option gets through.
func parseKey(s string) (string, error) {
	if len(s) < minKeyChars || len(s) > maxKeyChars {
		return "", apierr.New(InvalidArgs, "SSHPublicKey must be %d to %d characters long; it is %d.", minKeyChars, maxKeyChars, len(s))
	}
	line := strings.TrimSpace(s)
	if strings.IndexFunc(line, unicode.IsControl) >= 0 {
		return "", apierr.New(InvalidArgs, "SSHPublicKey must be a single line in OpenSSH format.")
	}
	pub, comment, options, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return "", apierr.New(InvalidArgs, "SSHPublicKey is not a public key in OpenSSH format.")
	}
	if len(options) > 0 {
		return "", apierr.New(InvalidArgs, "SSHPublicKey must not carry authorized_keys options.")
	}
	switch pub.Type() {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521:
	case ssh.KeyAlgoRSA:
		if k, ok := pub.(ssh.CryptoPublicKey).CryptoPublicKey().(*rsa.PublicKey); !ok || k.N.BitLen() < minRSABits {
			return "", apierr.New(InvalidArgs, "SSHPublicKey is an RSA key shorter than %d bits.", minRSABits)
		}
	default:
		return "", apierr.New(InvalidArgs, "SSHPublicKey type %s is not supported: use ssh-rsa (%d bits or more), ssh-ed25519 or ecdsa-sha2-nistp256/384/521.", pub.Type(), minRSABits)
	}
	out := strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(pub)), "\n")
	if comment != "" {
		out += " " + comment
	}
	return out, nil
}
