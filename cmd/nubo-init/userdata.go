package main

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"path"
	"sort"
	"strings"
)

// User data, as EC2 passes it to cloud-init (and nubo-init reads it the way
// cloud-init 22.4 does):
//
//   - at most 16 KB, as the metadata service returns it (already decoded
//     from the base64 of RunInstances);
//   - gzip-compressed or not (recognised by its magic bytes);
//   - a MIME multi-part message when "MIME-Version:" appears in its first
//     4,096 bytes; parts may be base64 or quoted-printable, and gzip parts
//     (application/gzip and the like) are decompressed and looked at again;
//   - otherwise, and for parts of type text/plain, the type comes from the
//     first line: "#!" a script, "#cloud-config" cloud-config,
//     "#cloud-boothook" a boot hook.
//
// Scripts run as root, in the lexical order of their names (part-001, … or a
// part's file name, as cloud-init names them); cloud-config parts are
// merged, a later part's keys replacing an earlier one's. Other types
// (#include, #part-handler, #cloud-config-archive, jinja templates, …) are
// logged and ignored.

// userDataLimit is EC2's limit on user data.
const userDataLimit = 16 << 10

// maxDecompressed bounds what gzip user data may expand to.
const maxDecompressed = 4 << 20

var gzipMagic = []byte{0x1f, 0x8b}

// userPart is one piece of user data that nubo-init runs.
type userPart struct {
	name string // file name: part-001, or the MIME part's file name
	body []byte
}

// userData is user data taken apart.
type userData struct {
	scripts   []userPart  // "#!" scripts, sorted by name
	boothooks []userPart  // "#cloud-boothook", in order
	config    map[any]any // merged cloud-config documents (nil if none)
	configs   int         // how many cloud-config parts
	ignored   []string    // what was left out, for the log
}

// parseUserData takes raw user data apart.
func parseUserData(raw []byte) (*userData, error) {
	if len(raw) > userDataLimit {
		return nil, fmt.Errorf("user data is %d bytes, more than EC2's %d", len(raw), userDataLimit)
	}
	ud := &userData{}
	data, err := maybeGunzip(raw)
	if err != nil {
		return nil, err
	}
	head := data[:min(len(data), 4096)]
	if bytes.Contains(bytes.ToLower(head), []byte("mime-version:")) {
		msg, err := mail.ReadMessage(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("user data: MIME message: %w", err)
		}
		counter := 0
		if err := ud.walk(textproto.MIMEHeader(msg.Header), msg.Body, &counter, 0); err != nil {
			return nil, err
		}
	} else if err := ud.add("", "text/x-not-multipart", data, new(int)); err != nil {
		return nil, err
	}
	sort.SliceStable(ud.scripts, func(i, j int) bool { return ud.scripts[i].name < ud.scripts[j].name })
	return ud, nil
}

// walk handles one MIME entity: a multipart container's parts in turn, or
// a leaf.
func (ud *userData) walk(h textproto.MIMEHeader, body io.Reader, counter *int, depth int) error {
	if depth > 10 {
		return errors.New("user data: MIME parts nested too deep")
	}
	ctype, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		ctype = "text/plain"
	}
	if strings.HasPrefix(ctype, "multipart/") {
		if params["boundary"] == "" {
			return fmt.Errorf("user data: %s without a boundary", ctype)
		}
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("user data: MIME part: %w", err)
			}
			if err := ud.walk(p.Header, p, counter, depth+1); err != nil {
				return err
			}
		}
	}
	payload, err := decodeTransfer(h.Get("Content-Transfer-Encoding"), body)
	if err != nil {
		return fmt.Errorf("user data: MIME part %s: %w", ctype, err)
	}
	name := ""
	if _, dp, err := mime.ParseMediaType(h.Get("Content-Disposition")); err == nil {
		name = dp["filename"]
	}
	return ud.add(name, ctype, payload, counter)
}

// gzipTypes are the content types cloud-init decompresses.
var gzipTypes = map[string]bool{
	"application/gzip": true, "application/gzip-compressed": true, "application/gzipped": true,
	"application/x-compress": true, "application/x-compressed": true, "application/x-gunzip": true,
	"application/x-gzip": true, "application/x-gzip-compressed": true,
}

// add files one leaf of user data under its type.
func (ud *userData) add(name, ctype string, payload []byte, counter *int) error {
	if gzipTypes[ctype] {
		var err error
		if payload, err = gunzip(payload); err != nil {
			ud.ignored = append(ud.ignored, fmt.Sprintf("a %s part that is not gzip (%v)", ctype, err))
			return nil
		}
		ctype = "text/plain"
	}
	switch ctype {
	case "text/plain", "text/x-not-multipart", "text/x-shellscript", "application/octet-stream":
		if t := typeFromContent(payload); t != "" {
			ctype = t
		}
	}
	*counter++
	if name == "" {
		name = fmt.Sprintf("part-%03d", *counter)
	}
	switch ctype {
	case "text/x-shellscript":
		// Parts of the same file name: the later one wins, as its file
		// overwrites the earlier one's in cloud-init.
		p := userPart{name: safeName(name, *counter), body: payload}
		for i := range ud.scripts {
			if ud.scripts[i].name == p.name {
				ud.scripts[i] = p
				return nil
			}
		}
		ud.scripts = append(ud.scripts, p)
	case "text/cloud-boothook":
		ud.boothooks = append(ud.boothooks, userPart{name: safeName(name, *counter), body: stripFirstLineIf(payload, "#cloud-boothook")})
	case "text/cloud-config":
		doc, err := parseCloudConfig(payload)
		if err != nil {
			return err
		}
		ud.config = mergeConfig(ud.config, doc)
		ud.configs++
	case "text/x-not-multipart", "text/plain":
		ud.ignored = append(ud.ignored, fmt.Sprintf("%s: not a script (#!), #cloud-config or MIME multi-part", name))
	default:
		ud.ignored = append(ud.ignored, fmt.Sprintf("%s: type %s is not supported by nubo-init", name, ctype))
	}
	return nil
}

// typeFromContent is cloud-init's guess from a part's first bytes ("" if
// none matches); longer prefixes first, so #cloud-config-archive is not
// taken for #cloud-config.
func typeFromContent(b []byte) string {
	for _, p := range []struct{ prefix, ctype string }{
		{"## template: jinja", "text/jinja2"},
		{"#cloud-config-archive", "text/cloud-config-archive"},
		{"#cloud-config-jsonp", "text/cloud-config-jsonp"},
		{"#cloud-boothook", "text/cloud-boothook"},
		{"#include-once", "text/x-include-once-url"},
		{"#part-handler", "text/part-handler"},
		{"#cloud-config", "text/cloud-config"},
		{"#upstart-job", "text/upstart-job"},
		{"#include", "text/x-include-url"},
		{"#!", "text/x-shellscript"},
	} {
		if bytes.HasPrefix(b, []byte(p.prefix)) {
			return p.ctype
		}
	}
	return ""
}

// decodeTransfer undoes a part's Content-Transfer-Encoding.
func decodeTransfer(enc string, body io.Reader) ([]byte, error) {
	var r io.Reader = body
	switch strings.ToLower(strings.TrimSpace(enc)) {
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, newlineStripper{body})
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	}
	b, err := io.ReadAll(io.LimitReader(r, maxDecompressed+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxDecompressed {
		return nil, fmt.Errorf("more than %d bytes", maxDecompressed)
	}
	return b, nil
}

// newlineStripper drops CR and LF, which MIME base64 has every 76 characters.
type newlineStripper struct{ r io.Reader }

func (n newlineStripper) Read(p []byte) (int, error) {
	for {
		k, err := n.r.Read(p)
		j := 0
		for _, c := range p[:k] {
			if c != '\r' && c != '\n' && c != ' ' && c != '\t' {
				p[j] = c
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}

// maybeGunzip decompresses data that starts with gzip's magic bytes.
func maybeGunzip(data []byte) ([]byte, error) {
	if !bytes.HasPrefix(data, gzipMagic) {
		return data, nil
	}
	out, err := gunzip(data)
	if err != nil {
		return nil, fmt.Errorf("user data: gzip: %w", err)
	}
	return out, nil
}

func gunzip(data []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	out, err := io.ReadAll(io.LimitReader(zr, maxDecompressed+1))
	if err != nil {
		return nil, err
	}
	if len(out) > maxDecompressed {
		return nil, fmt.Errorf("decompresses to more than %d bytes", maxDecompressed)
	}
	return out, nil
}

// safeName makes a MIME file name usable as a file name in the scripts
// directory.
func safeName(name string, n int) string {
	name = path.Base(strings.ReplaceAll(name, "\\", "/"))
	if name == "." || name == "/" || name == ".." || strings.HasPrefix(name, ".") {
		return fmt.Sprintf("part-%03d", n)
	}
	return name
}

// stripFirstLineIf drops the first line of b if it starts with prefix.
func stripFirstLineIf(b []byte, prefix string) []byte {
	if !bytes.HasPrefix(b, []byte(prefix)) {
		return b
	}
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[i+1:]
	}
	return nil
}
