package schemaregistry

import (
	"errors"
	"fmt"
	"net/http"
)

// Confluent's error codes (the "error_code" of an error body).
const (
	codeSubjectNotFound        = 40401
	codeVersionNotFound        = 40402
	codeSchemaNotFound         = 40403
	codeSubjectSoftDeleted     = 40404
	codeSubjectNotSoftDeleted  = 40405
	codeVersionSoftDeleted     = 40406
	codeVersionNotSoftDeleted  = 40407
	codeSubjectLevelNotSet     = 40408
	codeIncompatible           = 409
	codeInvalidSchema          = 42201
	codeInvalidVersion         = 42202
	codeInvalidCompatibility   = 42203
	codeReferenceExists        = 42206
	codeUnprocessable          = 422
	codeStoreError             = 50001
	codeOperationTimeout       = 50002
	codeNotFound               = 404
	codeMethodNotAllowed       = 405
	codeUnsupportedContentType = 415
)

// apiError is a Confluent error answer: an HTTP status and a body
// {"error_code": code, "message": msg}.
type apiError struct {
	status int
	code   int
	msg    string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d: %s", e.code, e.msg) }

func newErr(status, code int, format string, args ...any) error {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

func subjectNotFound(subject string) error {
	return newErr(http.StatusNotFound, codeSubjectNotFound, "Subject '%s' not found.", subject)
}

func versionNotFound(subject string, version int32) error {
	return newErr(http.StatusNotFound, codeVersionNotFound, "Version %d not found for subject '%s'.", version, subject)
}

func schemaNotFound(format string, args ...any) error {
	return newErr(http.StatusNotFound, codeSchemaNotFound, format, args...)
}

func invalidSchema(format string, args ...any) error {
	return newErr(http.StatusUnprocessableEntity, codeInvalidSchema, format, args...)
}

func unprocessable(format string, args ...any) error {
	return newErr(http.StatusUnprocessableEntity, codeUnprocessable, format, args...)
}

// ErrIncompatible wraps the reasons a schema is not compatible.
var ErrIncompatible = errors.New("schema is incompatible")
