package detect

// phraseSet finds known phrases in a text in one pass, ignoring ASCII case.
// It is a byte trie walked from each candidate start position: every
// position for paths, only word starts for user agents, where a phrase must
// also end at a word boundary (so "vega" never matches "veganism.social").
// The root is an array, so a position whose byte starts no phrase costs one
// index; below it a node lists its few children's bytes, scanned in a
// cache line rather than hashed; texts are short, so the walks are too.
type phraseSet struct {
	root  [256]*trieNode
	words bool // match only whole words
}

type trieNode struct {
	keys  []byte // the (lower-case) bytes that continue a phrase from here
	kids  []*trieNode
	value int // index+1 of the phrase ending here; 0 when none does
}

// child is the node after byte c, or nil. Most nodes have a child or two;
// a plain loop beats bytes.IndexByte's call at that size.
func (n *trieNode) child(c byte) *trieNode {
	for i, k := range n.keys {
		if k == c {
			return n.kids[i]
		}
	}
	return nil
}

func newPhraseSet(words bool) *phraseSet { return &phraseSet{words: words} }

// add files phrase (lower-cased) with value v ≥ 0.
func (s *phraseSet) add(phrase string, v int) {
	if phrase == "" {
		return
	}
	c := lower(phrase[0])
	n := s.root[c]
	if n == nil {
		n = &trieNode{}
		s.root[c] = n
	}
	for i := 1; i < len(phrase); i++ {
		c := lower(phrase[i])
		child := n.child(c)
		if child == nil {
			child = &trieNode{}
			n.keys, n.kids = append(n.keys, c), append(n.kids, child)
		}
		n = child
	}
	n.value = v + 1
}

// find calls yield with the value of every phrase found in text and the
// offset just past it, in order of position, until yield returns false.
func (s *phraseSet) find(text string, yield func(v, end int) bool) {
	for i := 0; i < len(text); i++ {
		if s.words && i > 0 && isWordByte(text[i-1]) {
			continue // not a word start
		}
		n := s.root[lower(text[i])]
		for j := i + 1; n != nil; j++ {
			if n.value != 0 && (!s.words || j == len(text) || !isWordByte(text[j])) {
				if !yield(n.value-1, j) {
					return
				}
			}
			if j == len(text) {
				break
			}
			n = n.child(lower(text[j]))
		}
	}
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func isWordByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// exact returns the value of the phrase that is the whole of text, or -1.
func (s *phraseSet) exact(text string) int {
	if text == "" {
		return -1
	}
	n := s.root[lower(text[0])]
	for i := 1; n != nil && i < len(text); i++ {
		n = n.child(lower(text[i]))
	}
	if n == nil || n.value == 0 {
		return -1
	}
	return n.value - 1
}
