// Package eic is EC2 Instance Connect's API (service ec2-instance-connect):
// SendSSHPublicKey, in AWS's JSON 1.1 protocol, served on the EC2 endpoint
// and told apart by its X-Amz-Target header. A pushed key is a record in the
// store, on a lease, which the metadata service lists (ActiveKeys) for the
// instance's sshd.
package eic

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"nubo/internal/api/ec2query"
	"nubo/internal/apierr"
	"nubo/internal/instance"
	"nubo/internal/store"
)

// SigningName is the service name of the credential scope clients sign with.
const SigningName = "ec2-instance-connect"

// TargetPrefix starts the X-Amz-Target header of every call to this API.
const TargetPrefix = "AWSEC2InstanceConnectService."

// maxBodyBytes bounds a request: a key is at most 4096 characters.
const maxBodyBytes = 64 << 10

// Instances reads instance records (instance.Service does).
type Instances interface {
	Get(ctx context.Context, account, id string) (instance.Instance, error)
}

// Handler serves EC2 Instance Connect for one region.
type Handler struct {
	Region    string
	Store     *store.Store
	Instances Instances
	// Lookup returns the account owning an access key ID.
	Lookup func(accessKeyID string) (ec2query.Account, bool)
	Log    *slog.Logger
	Now    func() time.Time // for tests; nil means time.Now
}

// IsRequest reports whether r is a call to this API rather than to EC2's.
func IsRequest(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("X-Amz-Target"), TargetPrefix)
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	c := call{requestID: newRequestID(), op: strings.TrimPrefix(r.Header.Get("X-Amz-Target"), TargetPrefix)}
	resp, err := h.serve(r, &c)
	if err == nil {
		writeJSON(w, c.requestID, http.StatusOK, resp)
		h.log().Debug("request", "request_id", c.requestID, "account", c.account, "action", c.op, "dur", time.Since(start))
		return
	}
	e, ok := apierr.As(err)
	if !ok {
		h.log().Error("internal error", "request_id", c.requestID, "account", c.account, "action", c.op, "err", err)
		e = apierr.New(ServiceException, "The service encountered an error (request %s).", c.requestID)
	}
	status := statusOf(e.Code)
	h.log().Debug("request failed", "request_id", c.requestID, "account", c.account, "action", c.op, "code", e.Code, "status", status, "dur", time.Since(start))
	writeJSON(w, c.requestID, status, errorBody{Type: e.Code, Message: e.Message})
}

// call is what one request has revealed about itself so far.
type call struct {
	requestID, op, account string
}

func (h *Handler) log() *slog.Logger {
	if h.Log == nil {
		return slog.Default()
	}
	return h.Log
}

func (h *Handler) now() time.Time {
	if h.Now == nil {
		return time.Now()
	}
	return h.Now()
}

func (h *Handler) serve(r *http.Request, c *call) (resp any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic serving %s: %v", c.op, p)
		}
	}()
	if r.Method != http.MethodPost {
		return nil, apierr.New(UnknownOperation, "The HTTP method %s is not supported; use POST.", r.Method)
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	if err != nil {
		return nil, apierr.New(SerializationException, "The request body is larger than %d bytes or unreadable.", maxBodyBytes)
	}
	if c.account, err = h.authenticate(r, body); err != nil {
		return nil, err
	}
	switch c.op {
	case "SendSSHPublicKey":
		var in sendSSHPublicKeyInput
		if err := decode(body, &in); err != nil {
			return nil, err
		}
		return h.sendSSHPublicKey(r.Context(), c, in)
	}
	return nil, apierr.New(UnknownOperation, "The operation %s is not supported.", c.op)
}

type sendSSHPublicKeyInput struct {
	InstanceID       *string `json:"InstanceId"`
	InstanceOSUser   *string `json:"InstanceOSUser"`
	SSHPublicKey     *string `json:"SSHPublicKey"`
	AvailabilityZone *string `json:"AvailabilityZone"`
}

type sendSSHPublicKeyOutput struct {
	RequestID string `json:"RequestId"`
	Success   bool   `json:"Success"`
}

func (h *Handler) sendSSHPublicKey(ctx context.Context, c *call, in sendSSHPublicKeyInput) (any, error) {
	id, err := required("InstanceId", in.InstanceID)
	if err != nil {
		return nil, err
	}
	user, err := required("InstanceOSUser", in.InstanceOSUser)
	if err != nil {
		return nil, err
	}
	rawKey, err := required("SSHPublicKey", in.SSHPublicKey)
	if err != nil {
		return nil, err
	}
	if err := checkInstanceID(id); err != nil {
		return nil, err
	}
	if err := checkUser(user); err != nil {
		return nil, err
	}
	key, err := parseKey(rawKey)
	if err != nil {
		return nil, err
	}
	if in.AvailabilityZone != nil {
		if err := checkZone(*in.AvailabilityZone); err != nil {
			return nil, err
		}
	}

	inst, err := h.Instances.Get(ctx, c.account, id)
	if e, ok := apierr.As(err); ok && strings.HasPrefix(e.Code, "InvalidInstanceID.") {
		// Malformed by nubo's stricter format means it cannot exist either.
		return nil, apierr.New(EC2InstanceNotFound, "Instance %s was not found in region %s.", id, h.Region)
	} else if err != nil {
		return nil, err
	}
	if inst.State != instance.Running {
		return nil, apierr.New(EC2InstanceStateInvalid, "Instance %s is %s; EC2 Instance Connect needs a running instance.", id, inst.State)
	}
	if in.AvailabilityZone != nil && *in.AvailabilityZone != inst.Zone {
		return nil, apierr.New(InvalidArgs, "Instance %s is not in Availability Zone %s.", id, *in.AvailabilityZone)
	}
	if err := putKey(ctx, h.Store, c.account, h.Region, id, user, key, h.now()); err != nil {
		return nil, err
	}
	return sendSSHPublicKeyOutput{RequestID: c.requestID, Success: true}, nil
}

func required(name string, v *string) (string, error) {
	if v == nil || *v == "" {
		return "", apierr.New(InvalidArgs, "%s is required.", name)
	}
	return *v, nil
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
