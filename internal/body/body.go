// Package body reads a small request body without taking it from the
// handlers after: detection looks for payloads in it, the policy for a
// method override.
package body

import (
	"bytes"
	"io"
	"net/http"
)

// Peek reads r's body when its length is known and at most max, and puts
// it back for whoever reads it next; nil for any other body, which is left
// alone (a streamed upload is never held up).
func Peek(r *http.Request, max int64) []byte {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength <= 0 || r.ContentLength > max {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, r.ContentLength))
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(b), r.Body), r.Body}
	if err != nil {
		return nil
	}
	return b
}
