package eic

import "net/http"

// Error codes (the __type of an error document). The first are the
// service's modelled exceptions, which SDKs decode into types; the rest are
// the JSON protocol's common errors. (Nothing here throttles: AWS documents
// ThrottlingException but no rate.)
const (
	EC2InstanceNotFound     = "EC2InstanceNotFoundException"
	EC2InstanceStateInvalid = "EC2InstanceStateInvalidException"
	InvalidArgs             = "InvalidArgsException"
	ServiceException        = "ServiceException"

	IncompleteSignature        = "IncompleteSignatureException"
	InvalidSignature           = "InvalidSignatureException"
	MissingAuthenticationToken = "MissingAuthenticationTokenException"
	SerializationException     = "SerializationException"
	UnknownOperation           = "UnknownOperationException"
	UnrecognizedClient         = "UnrecognizedClientException"
)

// statusOf is the HTTP status of an error code: the service model's
// httpError traits (as in aws-sdk-go-v2), 400 for the protocol's own.
func statusOf(code string) int {
	switch code {
	case MissingAuthenticationToken:
		return http.StatusForbidden
	case EC2InstanceNotFound:
		return http.StatusNotFound
	case ServiceException:
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}
