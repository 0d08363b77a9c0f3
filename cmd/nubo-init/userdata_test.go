package main

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"strings"
	"testing"
)

func gz(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func scriptNames(ud *userData) string {
	var n []string
	for _, s := range ud.scripts {
		n = append(n, s.name)
	}
	return strings.Join(n, " ")
}

func TestParseUserDataSingle(t *testing.T) {
	for _, tc := range []struct {
		name    string
		raw     []byte
		scripts string
		configs int
		ignored int
	}{
		{"script", []byte("#!/bin/sh\necho hi\n"), "part-001", 0, 0},
		{"gzip script", gz(t, "#!/bin/bash\necho hi\n"), "part-001", 0, 0},
		{"cloud-config", []byte("#cloud-config\nruncmd: [ls]\n"), "", 1, 0},
		{"gzip cloud-config", gz(t, "#cloud-config\nruncmd: [ls]\n"), "", 1, 0},
		{"plain text", []byte("hello world\n"), "", 0, 1},
		{"include", []byte("#include\nhttp://example.com/x\n"), "", 0, 1},
		{"cloud-config-archive is not cloud-config", []byte("#cloud-config-archive\n- type: foo\n"), "", 0, 1},
		{"empty", nil, "", 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ud, err := parseUserData(tc.raw)
			if err != nil {
				t.Fatal(err)
			}
			if got := scriptNames(ud); got != tc.scripts || ud.configs != tc.configs || len(ud.ignored) != tc.ignored {
				t.Errorf("scripts %q configs %d ignored %q; want %q %d %d", got, ud.configs, ud.ignored, tc.scripts, tc.configs, tc.ignored)
			}
		})
	}
	if _, err := parseUserData(bytes.Repeat([]byte("x"), userDataLimit+1)); err == nil {
		t.Error("user data over 16 KB accepted")
	}
	if _, err := parseUserData(append([]byte{0x1f, 0x8b}, "not gzip"...)); err == nil {
		t.Error("broken gzip accepted")
	}
	if _, err := parseUserData([]byte("#cloud-config\n- a list\n")); err == nil {
		t.Error("a cloud-config that is not a mapping accepted")
	}
}

// mimeUserData is what `cloud-init devel make-mime` (and Terraform's
// cloudinit_config) produce, with the kinds of parts seen in the wild.
func mimeUserData(t *testing.T) []byte {
	gzPart := base64.StdEncoding.EncodeToString(gz(t, "#!/bin/sh\necho from-gzip-part\n"))
	b64Part := base64.StdEncoding.EncodeToString([]byte("#cloud-config\nruncmd:\n - echo from-b64-config\npackages: [jq]\n"))
	return []byte(`Content-Type: multipart/mixed; boundary="===============BOUNDARY=="
MIME-Version: 1.0

--===============BOUNDARY==
Content-Type: text/cloud-config; charset="us-ascii"
MIME-Version: 1.0
Content-Transfer-Encoding: 7bit
Content-Disposition: attachment; filename="config.yaml"

#cloud-config
runcmd:
 - echo first-config
write_files:
 - path: /etc/first
   content: one

--===============BOUNDARY==
Content-Type: text/x-shellscript; charset="us-ascii"
Content-Disposition: attachment; filename="b-second.sh"

#!/bin/sh
echo second
--===============BOUNDARY==
Content-Type: text/x-shellscript
Content-Disposition: attachment; filename="a-first.sh"

#!/bin/sh
echo first
--===============BOUNDARY==
Content-Type: application/x-gzip
Content-Transfer-Encoding: base64

` + gzPart + `
--===============BOUNDARY==
Content-Type: text/plain
Content-Transfer-Encoding: base64

` + b64Part + `
--===============BOUNDARY==
Content-Type: text/cloud-boothook

#cloud-boothook
#!/bin/sh
echo hook
--===============BOUNDARY==
Content-Type: text/x-include-url

http://example.com/more
--===============BOUNDARY==--
`)
}

func TestParseUserDataMIME(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  []byte
	}{{"plain", mimeUserData(t)}, {"gzip", gz(t, string(mimeUserData(t)))}} {
		t.Run(tc.name, func(t *testing.T) {
			ud, err := parseUserData(tc.raw)
			if err != nil {
				t.Fatal(err)
			}
			// Scripts run in the order of their names, as cloud-init's
			// scripts-user runs its directory.
			if got, want := scriptNames(ud), "a-first.sh b-second.sh part-004"; got != want {
				t.Errorf("scripts %q, want %q", got, want)
			}
			if !strings.Contains(string(ud.scripts[2].body), "from-gzip-part") {
				t.Errorf("gzip part: %q", ud.scripts[2].body)
			}
			if len(ud.boothooks) != 1 || string(ud.boothooks[0].body) != "#!/bin/sh\necho hook" {
				t.Errorf("boot hooks %q", ud.boothooks)
			}
			if ud.configs != 2 || len(ud.ignored) != 1 || !strings.Contains(ud.ignored[0], "text/x-include-url") {
				t.Errorf("configs %d, ignored %q", ud.configs, ud.ignored)
			}
			// The later cloud-config part's runcmd replaces the earlier one's;
			// keys it does not have stay.
			cfg, _, problems := decodeCloudConfig(ud.config)
			if len(problems) > 0 {
				t.Fatal(problems)
			}
			if len(cfg.RunCmd) != 1 || cfg.RunCmd[0] != "echo from-b64-config" || len(cfg.WriteFiles) != 1 || len(cfg.Packages) != 1 {
				t.Errorf("merged config %+v", cfg)
			}
		})
	}
}

func TestParseUserDataMIMEDetails(t *testing.T) {
	// A text/x-shellscript part without #! is still a script (it will fail
	// to run, as with cloud-init); quoted-printable is decoded; a later part
	// of the same file name replaces an earlier one.
	raw := []byte("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n" +
		"--XX\r\nContent-Type: text/x-shellscript\r\nContent-Disposition: attachment; filename=\"s\"\r\n\r\necho no shebang\r\n" +
		"--XX\r\nContent-Type: text/x-shellscript\r\nContent-Transfer-Encoding: quoted-printable\r\nContent-Disposition: attachment; filename=\"s\"\r\n\r\n#!/bin/sh\r\necho a=3Db\r\n" +
		"--XX\r\nContent-Type: text/x-shellscript\r\nContent-Disposition: attachment; filename=\"../../etc/passwd\"\r\n\r\n#!/bin/sh\r\n" +
		"--XX--\r\n")
	ud, err := parseUserData(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got := scriptNames(ud); got != "passwd s" {
		t.Fatalf("scripts %q", got)
	}
	if !strings.Contains(string(ud.scripts[1].body), "echo a=b") {
		t.Errorf("quoted-printable part: %q", ud.scripts[1].body)
	}
}
