//go:build !unix

package store

import "os"

// lockDir opens path; other platforms go without the cross-process lock.
func lockDir(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
}
