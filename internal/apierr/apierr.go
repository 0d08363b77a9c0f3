// Package apierr defines the client-visible errors of the EC2 API: an EC2 error
// code and a message. Services return them for a client's mistake; the API edge
// (package ec2query) turns them into EC2's XML error document and HTTP status.
// Any other error reaching the edge is a server fault and becomes InternalError.
package apierr

import (
	"errors"
	"fmt"
)

// Error is an EC2 error: Code is EC2's error code, Message names what was wrong.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// New returns an EC2 error with a formatted message.
func New(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// As reports whether err is (or wraps) an EC2 error and returns it.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// Codes used across services. Resource-specific codes (InvalidKeyPair.NotFound,
// …) are written where they are raised, next to their resource.
const (
	AuthFailure                 = "AuthFailure"
	DryRunOperation             = "DryRunOperation"
	IncompleteSignature         = "IncompleteSignature"
	InternalError               = "InternalError"
	InvalidAction               = "InvalidAction"
	InvalidID                   = "InvalidID"
	InvalidNextToken            = "InvalidNextToken"
	InvalidParameter            = "InvalidParameter"
	InvalidParameterCombination = "InvalidParameterCombination"
	InvalidParameterValue       = "InvalidParameterValue"
	MalformedQueryString        = "MalformedQueryString"
	MissingAction               = "MissingAction"
	MissingAuthenticationToken  = "MissingAuthenticationToken"
	MissingParameter            = "MissingParameter"
	NoSuchVersion               = "NoSuchVersion"
	RequestExpired              = "RequestExpired"
	SignatureDoesNotMatch       = "SignatureDoesNotMatch"
	TagLimitExceeded            = "TagLimitExceeded"
	UnsupportedOperation        = "UnsupportedOperation"
)

// Missing is MissingParameter for a required parameter.
func Missing(param string) *Error {
	return New(MissingParameter, "The request must contain the parameter %s", param)
}

// InvalidValue is InvalidParameterValue naming the parameter and its value.
func InvalidValue(param, value, why string) *Error {
	if why == "" {
		return New(InvalidParameterValue, "Value (%s) for parameter %s is invalid.", value, param)
	}
	return New(InvalidParameterValue, "Value (%s) for parameter %s is invalid. %s", value, param, why)
}
