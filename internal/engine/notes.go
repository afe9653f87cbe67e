package engine

import (
	"context"
	"sync"
)

// Note is something an operation did that its caller should be told
// beside success: the provider shows each as a warning.
type Note struct {
	Summary, Detail string
}

// Notes collects the notes of the operations run with its context.
type Notes struct {
	mu   sync.Mutex
	list []Note
}

type notesKey struct{}

// WithNotes returns a context whose operations record their notes in the
// returned Notes.
func WithNotes(ctx context.Context) (context.Context, *Notes) {
	n := &Notes{}
	return context.WithValue(ctx, notesKey{}, n), n
}

// List returns the notes recorded so far.
func (n *Notes) List() []Note {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Note(nil), n.list...)
}

// note records a note when ctx collects them.
func note(ctx context.Context, summary, detail string) {
	if n, ok := ctx.Value(notesKey{}).(*Notes); ok {
		n.mu.Lock()
		n.list = append(n.list, Note{Summary: summary, Detail: detail})
		n.mu.Unlock()
	}
}
