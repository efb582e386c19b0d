package rest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"unicode/utf8"
)

func sprintf(format string, args ...any) string {
	if len(args) == 0 {
		return format
	}
	return fmt.Sprintf(format, args...)
}

// writeJSON writes v with status. Encoding cannot fail for the types the
// handlers use, so an error here is the client going away.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body, _ = json.Marshal(errorBody{Error: codeInternal, Message: "encode response: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// decode reads a JSON request body into v: 415 unless the Content-Type is
// application/json (parameters such as charset allowed), 413 beyond the
// body limit, 400 for anything that is not exactly one JSON value of the
// right shape. Unknown fields are ignored, for forward compatibility.
func (s *server) decode(w http.ResponseWriter, r *http.Request, v any) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return &apiError{status: http.StatusUnsupportedMediaType, code: codeUnsupportedMedia,
			msg: "missing Content-Type: send the body as application/json"}
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return &apiError{status: http.StatusUnsupportedMediaType, code: codeUnsupportedMedia,
			msg: fmt.Sprintf("Content-Type %q is not supported: send the body as application/json", ct)}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	// Exactly one value: reading on must find only whitespace.
	var extra json.RawMessage
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
		return nil
	case err == nil:
		return badRequest("malformed JSON: unexpected data after the request object")
	default:
		if e := decodeError(err); !isStatus(e, http.StatusBadRequest) {
			return e
		}
		return badRequest("malformed JSON: unexpected data after the request object")
	}
}

func isStatus(err error, status int) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.status == status
}

// decodeError explains a JSON decoding error to the client.
func decodeError(err error) error {
	var mbe *http.MaxBytesError
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &mbe):
		return &apiError{status: http.StatusRequestEntityTooLarge, code: codeTooLarge,
			msg: fmt.Sprintf("request body is larger than %d bytes", mbe.Limit)}
	case errors.Is(err, io.EOF):
		return badRequest("request body is empty: expected a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("malformed JSON: the body ends in the middle of a value")
	case errors.As(err, &syn):
		return badRequest("malformed JSON at byte %d: %s", syn.Offset, syn.Error())
	case errors.As(err, &typ):
		if typ.Field == "" {
			return badRequest("the request body must be a JSON object, got %s", typ.Value)
		}
		if isStringMap(typ.Field) && typ.Type.Kind() != reflect.Map {
			// The error is about one value of the map.
			return badRequest("field %s must be an object whose values are strings, got a %s value", typ.Field, typ.Value)
		}
		return badRequest("field %s must be %s, got %s", typ.Field, jsonTypeName(typ.Type.String()), typ.Value)
	}
	return badRequest("malformed JSON: %s", err.Error())
}

// isStringMap says whether a request field is an object of strings.
func isStringMap(field string) bool {
	switch field {
	case "config", "headers", "records.headers":
		return true
	}
	return false
}

// jsonTypeName names a Go type as a JSON client thinks of it.
func jsonTypeName(goType string) string {
	switch goType {
	case "string", "*string":
		return "a string"
	case "int32", "*int32", "int64", "*int64", "int", "*int":
		return "an integer in range"
	case "bool", "*bool":
		return "a boolean"
	case "map[string]string":
		return "an object of strings"
	}
	if len(goType) > 2 && goType[:2] == "[]" {
		return "an array"
	}
	return "an object"
}

// encoding says how a request encodes keys and values.
func parseEncoding(enc string) (b64 bool, err error) {
	switch enc {
	case "":
		return false, nil
	case "base64":
		return true, nil
	}
	return false, badRequest("encoding %q is not supported: use \"base64\" or leave it out", enc)
}

// nullableString is a JSON string field that distinguishes absent (set
// false), null (set, null) and a string.
type nullableString struct {
	set  bool
	null bool
	s    string
}

func (n *nullableString) UnmarshalJSON(b []byte) error {
	n.set = true
	if bytes.Equal(b, []byte("null")) {
		n.null = true
		return nil
	}
	if err := json.Unmarshal(b, &n.s); err != nil {
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) {
			// The decoder adds the field name to this error.
			return &json.UnmarshalTypeError{Value: typ.Value, Type: typ.Type, Offset: typ.Offset}
		}
		return err
	}
	return nil
}

// bytesOf decodes a key or value: nil for null, base64 when b64.
func bytesOf(field string, v nullableString, b64 bool) ([]byte, error) {
	if !v.set || v.null {
		return nil, nil
	}
	if !b64 {
		return []byte(v.s), nil
	}
	out, err := base64.StdEncoding.DecodeString(v.s)
	if err != nil {
		return nil, badRequest("%s is not valid base64 (standard encoding, with padding): %v", field, err)
	}
	return out, nil
}

// textOrBase64 renders consumed bytes: nil as null; valid UTF-8 as is,
// unless b64.
func textOrBase64(b []byte, b64 bool) *string {
	if b == nil {
		return nil
	}
	s := string(b)
	if b64 {
		s = base64.StdEncoding.EncodeToString(b)
	}
	return &s
}

func validUTF8(b []byte) bool { return b == nil || utf8.Valid(b) }

// queryInt reads an integer query parameter under any of names (the first
// present wins), with a default.
func queryInt(q url.Values, def int64, names ...string) (int64, error) {
	for _, name := range names {
		if !q.Has(name) {
			continue
		}
		v := q.Get(name)
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, badRequest("query parameter %s must be an integer, not %q", name, v)
		}
		return n, nil
	}
	return def, nil
}
