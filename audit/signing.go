package audit

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// LoadSigningKey reads the Ed25519 key that signs evidence exports from v:
// a PKCS #8 PEM block, or the path of a file holding one. "" is no key.
func LoadSigningKey(v string) (ed25519.PrivateKey, error) {
	if v == "" {
		return nil, nil
	}
	b := []byte(v)
	if !strings.Contains(v, "-----BEGIN") {
		var err error
		if b, err = os.ReadFile(v); err != nil {
			return nil, err
		}
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block (want a PKCS #8 Ed25519 private key, as `openssl genpkey -algorithm ed25519` writes)")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("not a PKCS #8 private key: %w", err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T, not an Ed25519 key", k)
	}
	return key, nil
}

// LoadPublicKey reads an Ed25519 public key from a PEM file (PKIX, as
// `openssl pkey -pubout` writes it).
func LoadPublicKey(file string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", file)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%s: a %T, not an Ed25519 key", file, k)
	}
	return pub, nil
}
