// Package account holds the accounts nubo serves and their access keys. They
// live in <data-dir>/credentials.json (mode 0600), made with one random
// account at first start; add accounts by adding entries to the file.
package account

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
)

// FileName is the credentials file inside the data dir.
const FileName = "credentials.json"

// Account is one tenant: a 12-digit ID and one access key.
type Account struct {
	ID              string `json:"account_id"`
	Name            string `json:"name,omitempty"`
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
}

// Set is every configured account, looked up by access key.
type Set struct {
	Accounts []Account `json:"accounts"`
	byKey    map[string]Account
}

var (
	accountIDRE = regexp.MustCompile(`^\d{12}$`)
	accessKeyRE = regexp.MustCompile(`^[A-Z0-9]{16,128}$`)
)

// Load reads the credentials file in dir, creating it with one new account
// when it does not exist.
func Load(dir string) (*Set, error) {
	path := filepath.Join(dir, FileName)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return create(path)
	}
	if err != nil {
		return nil, fmt.Errorf("reading credentials: %w", err)
	}
	var s Set
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", path, err)
	}
	return &s, s.index()
}

func create(path string) (*Set, error) {
	a := Account{ID: randomString("0123456789", 12), Name: "default",
		AccessKeyID:     "AKIA" + randomString("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16),
		SecretAccessKey: randomString("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", 40)}
	if a.ID[0] == '0' {
		a.ID = "1" + a.ID[1:]
	}
	s := &Set{Accounts: []Account{a}}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating data dir: %w", err)
	}
	// Write then rename, so a crash never leaves a half-written file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("writing credentials: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("writing credentials: %w", err)
	}
	return s, s.index()
}

func (s *Set) index() error {
	if len(s.Accounts) == 0 {
		return fmt.Errorf("credentials file lists no account")
	}
	s.byKey = map[string]Account{}
	for _, a := range s.Accounts {
		if !accountIDRE.MatchString(a.ID) {
			return fmt.Errorf("account_id %q is not 12 digits", a.ID)
		}
		if !accessKeyRE.MatchString(a.AccessKeyID) || a.SecretAccessKey == "" {
			return fmt.Errorf("account %s: access_key_id must be 16-128 uppercase letters and digits, with a secret_access_key", a.ID)
		}
		if _, dup := s.byKey[a.AccessKeyID]; dup {
			return fmt.Errorf("access key %s is listed twice", a.AccessKeyID)
		}
		s.byKey[a.AccessKeyID] = a
	}
	return nil
}

// ByAccessKey finds the account owning an access key ID.
func (s *Set) ByAccessKey(id string) (Account, bool) {
	a, ok := s.byKey[id]
	return a, ok
}

// Default is the first account, the one `nubo env` prints.
func (s *Set) Default() Account { return s.Accounts[0] }

func randomString(alphabet string, n int) string {
	out := make([]byte, n)
	max := big.NewInt(int64(len(alphabet)))
	for i := range out {
		k, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic(err)
		}
		out[i] = alphabet[k.Int64()]
	}
	return string(out)
}
