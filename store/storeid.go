package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/redis/go-redis/v9"
)

// The store's identity and the instances that anchor its audit trail: a
// key under the prefix and a set in Redis, two files in the file store's
// directory. Both go with the data: a flushed Redis or an emptied
// directory forgets them, a copied one keeps them.

const (
	storeIDFile = "store-id"
	anchorsFile = "audit-anchors"
)

// newStoreID is a fresh store id: 128 random bits in hex.
func newStoreID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// StoreID implements Store: the id is the file store-id in the directory.
func (s *FileStore) StoreID(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	path := filepath.Join(s.dir, storeIDFile)
	b, err := os.ReadFile(path)
	if err == nil {
		return string(bytes.TrimSpace(b)), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("file store %s: %s: %w", s.dir, storeIDFile, err)
	}
	id := newStoreID()
	if err := writeFileSynced(path, []byte(id+"\n")); err != nil {
		return "", fmt.Errorf("file store %s: %s: %w", s.dir, storeIDFile, err)
	}
	return id, nil
}

// NoteAnchor implements Store: the instances are the lines of the file
// audit-anchors in the directory.
func (s *FileStore) NoteAnchor(_ context.Context, instance string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	list, err := s.anchors()
	if err != nil || list[instance] {
		return err
	}
	f, err := os.OpenFile(filepath.Join(s.dir, anchorsFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("file store %s: %s: %w", s.dir, anchorsFile, err)
	}
	_, err = f.WriteString(instance + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("file store %s: %s: %w", s.dir, anchorsFile, err)
	}
	return nil
}

// Anchored implements Store.
func (s *FileStore) Anchored(_ context.Context, instance string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list, err := s.anchors()
	return list[instance], err
}

// anchors reads the instances in audit-anchors; none when there is no file.
func (s *FileStore) anchors() (map[string]bool, error) {
	f, err := os.Open(filepath.Join(s.dir, anchorsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("file store %s: %s: %w", s.dir, anchorsFile, err)
	}
	defer f.Close()
	list := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := string(bytes.TrimSpace(sc.Bytes())); line != "" {
			list[line] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("file store %s: %s: %w", s.dir, anchorsFile, err)
	}
	return list, nil
}

// writeFileSynced writes path whole or not at all: a temporary file,
// synced, renamed over it.
func writeFileSynced(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// StoreID implements Store: the id is the key store-id under the prefix,
// set once (SET NX) by whichever instance asks first.
func (s *RedisStore) StoreID(ctx context.Context) (string, error) {
	key := s.key("store-id")
	id, err := s.rdb.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		if err = s.rdb.SetNX(ctx, key, newStoreID(), 0).Err(); err == nil {
			id, err = s.rdb.Get(ctx, key).Result() // ours, or another instance's that came first
		}
	}
	if err != nil {
		return "", unavailable("redis store id", err)
	}
	return id, nil
}

// NoteAnchor implements Store: the instances are the set audit-anchors
// under the prefix.
func (s *RedisStore) NoteAnchor(ctx context.Context, instance string) error {
	if err := s.rdb.SAdd(ctx, s.key("audit-anchors"), instance).Err(); err != nil {
		return unavailable("redis note anchor", err)
	}
	return nil
}

// Anchored implements Store.
func (s *RedisStore) Anchored(ctx context.Context, instance string) (bool, error) {
	ok, err := s.rdb.SIsMember(ctx, s.key("audit-anchors"), instance).Result()
	if err != nil {
		return false, unavailable("redis anchored", err)
	}
	return ok, nil
}
