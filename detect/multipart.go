package detect

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
)

// Multipart form bodies (file uploads, and forms that carry one) are
// judged like other form bodies: each field's value by the body rule
// (documents.go), each part's field name and a file part's file name as a
// value. A file's content is not read: uploads are images, documents and
// archives, whose bytes say nothing about the request. The file name is
// read as the client wrote it: mime/multipart's FileName keeps only its
// last element, and with it drops the "../../" a traversal needs.

// eachMultipartValue calls visitName with every part's field name and file
// name, and visitValue with every other part's value (its first
// maxValueLen bytes), until either returns false.
func eachMultipartValue(b []byte, boundary string, visitName, visitValue func(string) bool) {
	mr := multipart.NewReader(bytes.NewReader(b), boundary)
	var buf []byte
	for {
		part, err := mr.NextPart()
		if err != nil {
			return
		}
		_, params, _ := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
		if name := params["name"]; name != "" && !visitName(name) {
			return
		}
		if file, ok := params["filename"]; ok {
			if file != "" && !visitName(file) {
				return
			}
			continue
		}
		if buf == nil {
			buf = make([]byte, maxValueLen)
		}
		n, _ := io.ReadFull(part, buf)
		if n > 0 && !visitValue(string(buf[:n])) {
			return
		}
	}
}

// multipartBoundary is the boundary of a multipart/form-data request, or "".
func multipartBoundary(contentType string) string {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/form-data" {
		return ""
	}
	return params["boundary"]
}
