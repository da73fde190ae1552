package approvals

import "errors"

// Errors the stores return; callers match them with errors.Is.
var (
	ErrNotFound       = errors.New("not found")
	ErrExists         = errors.New("already exists")
	ErrAlreadyRevoked = errors.New("already revoked")
	// ErrUnavailable wraps every failure to reach the backing store, so that
	// callers can tell "the store is down" (503) from "you asked wrongly".
	ErrUnavailable = errors.New("store unavailable")
)
