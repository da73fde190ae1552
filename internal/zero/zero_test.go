package zero

import (
	"errors"
	"testing"
)

func TestClearZeroesWhatIsSet(t *testing.T) {
	s, p, err := "x", new(int), errors.New("e")
	Clear(&s)
	Clear(&p)
	Clear(&err)
	if s != "" || p != nil || err != nil {
		t.Fatalf("after Clear: %q %v %v", s, p, err)
	}
	Clear(&s) // already zero: stays so
	if s != "" {
		t.Fatalf("Clear of a zero string gave %q", s)
	}
}
