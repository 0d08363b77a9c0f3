package ec2query

import (
	"bytes"
	"encoding/xml"
	"net/http"
	"strconv"
	"time"

	"nubo/internal/apierr"
)

// List is an EC2 list member: <name><item>…</item>…</name>. Unlike the
// "name>item" tag form it renders an empty <name/> for an empty list, as EC2 does.
type List[T any] struct {
	Items []T `xml:"item"`
}

// ListOf wraps items.
func ListOf[T any](items []T) List[T] { return List[T]{Items: items} }

// Time formats a timestamp as EC2 does (ISO 8601, milliseconds, UTC).
func Time(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// Tag is an EC2 <item><key/><value/></item> in a tagSet.
type Tag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

// TagSet renders a tag map in key order; nil when there are none, as EC2 omits
// tagSet from untagged resources.
func TagSet(tags map[string]string) *List[Tag] {
	if len(tags) == 0 {
		return nil
	}
	l := &List[Tag]{}
	for _, k := range sortedKeys(tags) {
		l.Items = append(l.Items, Tag{Key: k, Value: tags[k]})
	}
	return l
}

const xmlHeader = `<?xml version="1.0" encoding="UTF-8"?>` + "\n"

// encodeResponse renders <ActionResponse> with requestId and body's fields.
func encodeResponse(req *Request, body any) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(xmlHeader)
	buf.WriteString(`<` + req.Action + `Response xmlns="http://ec2.amazonaws.com/doc/` + req.Version + `/">`)
	buf.WriteString(`<requestId>` + req.RequestID + `</requestId>`)
	if body != nil {
		// Encode the body's fields as children: encode under a throwaway
		// element, then drop its start and end tags.
		var inner bytes.Buffer
		if err := xml.NewEncoder(&inner).EncodeElement(body, xml.StartElement{Name: xml.Name{Local: "x"}}); err != nil {
			return nil, err
		}
		b := inner.Bytes()
		if bytes.HasPrefix(b, []byte("<x>")) && bytes.HasSuffix(b, []byte("</x>")) {
			buf.Write(b[3 : len(b)-4])
		}
	}
	buf.WriteString(`</` + req.Action + `Response>`)
	return buf.Bytes(), nil
}

func writeXML(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

type errorDoc struct {
	XMLName   xml.Name    `xml:"Response"`
	Errors    []errorItem `xml:"Errors>Error"`
	RequestID string      `xml:"RequestID"`
}

type errorItem struct {
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

func writeError(w http.ResponseWriter, requestID string, status int, e *apierr.Error) {
	var buf bytes.Buffer
	buf.WriteString(xmlHeader)
	_ = xml.NewEncoder(&buf).Encode(errorDoc{Errors: []errorItem{{e.Code, e.Message}}, RequestID: requestID})
	writeXML(w, status, buf.Bytes())
}
