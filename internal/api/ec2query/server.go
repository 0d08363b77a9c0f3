// Package ec2query is the EC2 Query protocol: requests as form-encoded
// parameters signed with SigV4, responses as XML in the EC2 namespace, errors
// in EC2's error document. It knows nothing of resources; actions are
// registered by package ec2.
package ec2query

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"time"

	"nubo/internal/apierr"
)

// MaxBodyBytes bounds a request body (EC2 allows 16 KiB of user data, base64
// encoded, plus everything else; ImportKeyPair carries a key).
const MaxBodyBytes = 1 << 20

// Request is one decoded, authenticated API call.
type Request struct {
	Action    string
	Version   string
	RequestID string
	Account   string // the caller's account ID
	Params    Params
	DryRun    bool
}

// CheckDryRun returns DryRunOperation when the caller asked for a dry run.
// Mutating actions call it after validating and before changing anything.
func (r *Request) CheckDryRun() error {
	if r.DryRun {
		return apierr.New(apierr.DryRunOperation, "Request would have succeeded, but DryRun flag is set.")
	}
	return nil
}

// Handler serves one action. It returns a struct whose fields, encoded with
// encoding/xml, are the children of <ActionResponse>.
type Handler func(ctx context.Context, r *Request) (any, error)

// Account is what authentication needs to know of a caller.
type Account struct {
	ID     string
	Secret string
}

// Server is the HTTP front end of the EC2 Query API.
type Server struct {
	Region  string
	Actions map[string]Handler
	// Lookup returns the account owning an access key ID.
	Lookup func(accessKeyID string) (Account, bool)
	Log    *slog.Logger
	Now    func() time.Time // for tests; nil means time.Now
}

var versionRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	req := &Request{RequestID: newRequestID(), Version: "2016-11-15"}
	resp, err := s.serve(r, req)
	var body []byte
	if err == nil {
		if body, err = encodeResponse(req, resp); err != nil {
			err = fmt.Errorf("encoding %s response: %w", req.Action, err)
		}
	}
	if err == nil {
		writeXML(w, http.StatusOK, body)
		s.log().Debug("request", "request_id", req.RequestID, "account", req.Account, "action", req.Action, "dur", time.Since(start))
		return
	}
	e, ok := apierr.As(err)
	if !ok {
		s.log().Error("internal error", "request_id", req.RequestID, "account", req.Account, "action", req.Action, "err", err)
		e = apierr.New(apierr.InternalError, "An internal error has occurred (request %s).", req.RequestID)
	}
	status := StatusOf(e.Code)
	s.log().Debug("request failed", "request_id", req.RequestID, "account", req.Account, "action", req.Action, "code", e.Code, "status", status, "dur", time.Since(start))
	writeError(w, req.RequestID, status, e)
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}

func (s *Server) serve(r *http.Request, req *Request) (resp any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic serving %s: %v", req.Action, p)
		}
	}()
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		return nil, apierr.New(apierr.InvalidAction, "The HTTP method %s is not supported; use POST or GET.", r.Method)
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxBodyBytes))
	if err != nil {
		return nil, apierr.New(apierr.InvalidParameterValue, "The request body is larger than %d bytes or unreadable.", MaxBodyBytes)
	}
	params, err := ParseParams(r.URL.RawQuery)
	if err != nil {
		return nil, err
	}
	if r.Method == http.MethodPost {
		form, err := ParseParams(string(body))
		if err != nil {
			return nil, err
		}
		for k, v := range form.values {
			params.values[k] = append(params.values[k], v...)
		}
	}
	req.Params = params

	v := &Verifier{Region: s.Region, Service: "ec2", Now: s.Now, Secret: func(ak string) (string, bool) {
		a, ok := s.Lookup(ak)
		req.Account = a.ID
		return a.Secret, ok
	}}
	if _, err := v.Verify(r, body); err != nil {
		req.Account = ""
		return nil, err
	}

	req.Action = params.String("Action")
	if req.Action == "" {
		return nil, apierr.New(apierr.MissingAction, "The request must contain the parameter Action.")
	}
	h, ok := s.Actions[req.Action]
	if !ok {
		name := req.Action
		req.Action = ""
		return nil, apierr.New(apierr.InvalidAction, "The action %s is not valid for this web service.", name)
	}
	switch ver := params.String("Version"); {
	case ver == "":
		return nil, apierr.Missing("Version")
	case !versionRE.MatchString(ver):
		return nil, apierr.New(apierr.NoSuchVersion, "The requested version (%s) of service AmazonEC2 does not exist", ver)
	default:
		req.Version = ver
	}
	if req.DryRun, err = params.Bool("DryRun"); err != nil {
		return nil, err
	}
	resp, err = h(r.Context(), req)
	if err == nil && req.DryRun {
		// Read-only actions need no check of their own: had the call been
		// real, it would have succeeded.
		return nil, req.CheckDryRun()
	}
	return resp, err
}

// StatusOf is the HTTP status EC2 answers with for an error code.
func StatusOf(code string) int {
	switch code {
	case apierr.AuthFailure, apierr.MissingAuthenticationToken:
		return http.StatusUnauthorized
	case "UnauthorizedOperation", apierr.SignatureDoesNotMatch:
		return http.StatusForbidden
	case apierr.DryRunOperation:
		return http.StatusPreconditionFailed
	case apierr.InternalError:
		return http.StatusInternalServerError
	case "Unavailable", "RequestLimitExceeded", "ServiceUnavailable":
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
