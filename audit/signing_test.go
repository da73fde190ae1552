package audit

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSigningKeyComesFromAFileOrThePEMItself(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	block := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	file := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(file, []byte(block), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{"file": file, "PEM": block} {
		got, err := LoadSigningKey(v)
		if err != nil || !got.Equal(key) {
			t.Errorf("from the %s: %v", name, err)
		}
	}
	if k, err := LoadSigningKey(""); k != nil || err != nil {
		t.Errorf("no key: %v %v", k, err)
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	for v, says := range map[string]string{
		filepath.Join(t.TempDir(), "missing.pem"): "no such file",
		"-----BEGIN nothing":                      "no PEM block",
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER})):     "not an Ed25519 key",
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})): "not a PKCS #8 private key",
	} {
		if _, err := LoadSigningKey(v); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("%.30q: %v; want an error saying %q", v, err, says)
		}
	}
}
