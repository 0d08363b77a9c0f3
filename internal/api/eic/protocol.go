package eic

import (
	"bytes"
	"encoding/json"
	"net/http"

	"nubo/internal/api/ec2query"
	"nubo/internal/apierr"
)

// contentType is AWS's JSON 1.1 protocol, both ways.
const contentType = "application/x-amz-json-1.1"

// errorBody is the protocol's error document; clients read the code from
// __type and accept Message in either case.
type errorBody struct {
	Type    string `json:"__type"`
	Message string `json:"Message"`
}

func writeJSON(w http.ResponseWriter, requestID string, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // only plain structs of strings and bools get here
		status, b = http.StatusInternalServerError, []byte(`{"__type":"ServiceException"}`)
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Amzn-RequestId", requestID)
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// decode reads a JSON request body into v; members the operation does not
// have are ignored, as AWS does.
func decode(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return apierr.New(SerializationException, "The request body is not a valid JSON object of this operation's members: %v", err)
	}
	return nil
}

// authenticate verifies the request's SigV4 signature, scoped to this
// service and region, and returns the caller's account.
func (h *Handler) authenticate(r *http.Request, body []byte) (string, error) {
	var account string
	var looked, known bool
	v := &ec2query.Verifier{Region: h.Region, Service: SigningName, Now: h.Now, Secret: func(ak string) (string, bool) {
		a, ok := h.Lookup(ak)
		looked, known, account = true, ok, a.ID
		return a.Secret, ok
	}}
	if _, err := v.Verify(r, body); err != nil {
		return "", signatureError(err, looked && !known)
	}
	return account, nil
}

// signatureError turns the verifier's EC2 codes into the JSON protocol's.
func signatureError(err error, unknownKey bool) error {
	e, ok := apierr.As(err)
	if !ok {
		return err
	}
	switch {
	case unknownKey:
		return apierr.New(UnrecognizedClient, "The security token included in the request is invalid.")
	case e.Code == apierr.MissingAuthenticationToken:
		return apierr.New(MissingAuthenticationToken, "%s", e.Message)
	case e.Code == apierr.IncompleteSignature:
		return apierr.New(IncompleteSignature, "%s", e.Message)
	}
	return apierr.New(InvalidSignature, "%s", e.Message)
}
