package approvals

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// serverSetFields are Approval fields that a client may not send.
var serverSetFields = map[string]bool{
	"id": true, "status": true, "created_at": true, "revoked_at": true,
	"revoke_reason": true, "revoked_by": true, "usage": true, "token": true, "token_hash": true,
}

var listFields = map[string]bool{"sources": true, "hosts": true, "paths": true, "methods": true}

// DecodeRequest reads one JSON approval request. Unknown fields, server-set
// fields, wrong types, trailing data and malformed JSON are refused with an
// error that names the field or the byte offset.
func DecodeRequest(r io.Reader) (*Request, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var req Request
	if err := dec.Decode(&req); err != nil {
		return nil, describeJSONError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("body: trailing data after the JSON object")
	}
	return &req, nil
}

// DecodeRequestBytes is DecodeRequest over a byte slice.
func DecodeRequestBytes(b []byte) (*Request, error) {
	return DecodeRequest(bytes.NewReader(b))
}

func describeJSONError(err error) error {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
	)
	switch {
	case errors.Is(err, io.EOF):
		return errors.New("body: empty; want a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("body: the JSON ends early")
	case errors.As(err, &syntax):
		return fmt.Errorf("body: malformed JSON at byte %d: %v", syntax.Offset, syntax)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return fmt.Errorf("body: must be a JSON object, not %s", typ.Value)
		}
		want := describeType(typ.Type.String())
		if listFields[typ.Field] {
			want = describeType("[]string")
		}
		return BadField(typ.Field, "must be %s, not %s", want, typ.Value)
	}
	// encoding/json reports unknown fields only in its message.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		if serverSetFields[name] {
			return BadField(name, "is set by the server and may not be sent")
		}
		return BadField(name, "is not an approval field")
	}
	return fmt.Errorf("body: %v", err)
}

func describeType(goType string) string {
	switch goType {
	case "string":
		return "a string"
	case "[]string":
		return "a list of strings"
	case "float64", "int", "int64", "*int":
		return "a number"
	case "bool":
		return "true or false"
	}
	return goType
}
