package detect

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Documents in bodies (code hosts' webhooks, CMS rich text with embedded
// videos, Markdown with code blocks, GraphQL, chat commands, payment
// providers' events) carry no payload signal, however they talk about
// attacks.
func TestDocumentsInBodiesAreNotAttacks(t *testing.T) {
	d := newDetector(t, nil)
	files, _ := filepath.Glob("testdata/bodies/*")
	n := 0
	for _, f := range files {
		ct := map[string]string{".json": "application/json", ".form": "application/x-www-form-urlencoded"}[filepath.Ext(f)]
		if ct == "" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		n++
		res := d.inspect(bodyRequest(ct, strings.TrimSpace(string(b))), src, 0)
		if res.Signals&payloadSet != 0 {
			t.Errorf("%s: %v", filepath.Base(f), res.Signals.Names())
		}
	}
	if n < 8 {
		t.Fatalf("only %d bodies read", n)
	}
}

// Injections sent as a body field's whole value, or appended to a short
// one, are still found, in JSON and forms, GraphQL arguments and rich text
// with script that runs included.
func TestInjectionsInBodiesAreStillFound(t *testing.T) {
	d := newDetector(t, nil)
	b, err := os.ReadFile("testdata/bodies/attacks.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		kind, body, ok := strings.Cut(line, " | ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		ct := map[string]string{"json": "application/json", "form": "application/x-www-form-urlencoded"}[kind]
		if res := d.inspect(bodyRequest(ct, body), src, 0); res.Signals&payloadSet == 0 {
			t.Errorf("%s %s: nothing found", kind, body)
		}
	}
}

func TestProse(t *testing.T) {
	for v, want := range map[string]bool{
		"Fix SQL injection in search: escape quotes so ' OR 1=1 no longer matches": true,
		"1' AND 1=1-- -": false, "test' UNION ALL SELECT NULL,NULL,NULL-- -": false,
		"data:;base64,PD9waHAgZWNobyAnd2FwaXRpJzsgPz4=":      false,
		"I love this chair, great quality' AND SLEEP(5)-- -": true, // the trade-off: see documents.go
		"one line\nand another\nand a third":                 true,
	} {
		if got := prose(v); got != want {
			t.Errorf("prose(%q) = %v, want %v", v, got, want)
		}
	}
}
