package account

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestLoadCreatesOnceAndKeeps(t *testing.T) {
	dir := t.TempDir()
	s, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	a := s.Default()
	if !regexp.MustCompile(`^[1-9]\d{11}$`).MatchString(a.ID) ||
		!regexp.MustCompile(`^AKIA[A-Z2-7]{16}$`).MatchString(a.AccessKeyID) || len(a.SecretAccessKey) != 40 {
		t.Fatalf("generated account not in AWS's form: %+v", a)
	}
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file mode %v (%v)", fi.Mode(), err)
	}
	again, err := Load(dir)
	if err != nil || again.Default() != a {
		t.Fatalf("second load changed the account: %+v %v", again.Default(), err)
	}
	if got, ok := again.ByAccessKey(a.AccessKeyID); !ok || got.ID != a.ID {
		t.Fatalf("lookup by access key: %+v %v", got, ok)
	}
	if _, ok := again.ByAccessKey("AKIANOPE"); ok {
		t.Fatal("unknown key found")
	}
}

func TestLoadRejectsBadFiles(t *testing.T) {
	for name, body := range map[string]string{
		"not json":      "{",
		"no accounts":   `{"accounts":[]}`,
		"short id":      `{"accounts":[{"account_id":"123","access_key_id":"AKIAAAAAAAAAAAAAAAAA","secret_access_key":"s"}]}`,
		"lowercase key": `{"accounts":[{"account_id":"123456789012","access_key_id":"akiaaaaaaaaaaaaaaaaa","secret_access_key":"s"}]}`,
		"no secret":     `{"accounts":[{"account_id":"123456789012","access_key_id":"AKIAAAAAAAAAAAAAAAAA"}]}`,
		"duplicate key": `{"accounts":[{"account_id":"123456789012","access_key_id":"AKIAAAAAAAAAAAAAAAAA","secret_access_key":"s"},{"account_id":"123456789013","access_key_id":"AKIAAAAAAAAAAAAAAAAA","secret_access_key":"t"}]}`,
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, FileName), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(dir); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "panic") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
