package transport

import (
	"context"
	"errors"
)

// Lister lists one page at a time: Client, and the file system's view of a
// bucket.
type Lister interface {
	List(ctx context.Context, in *ListInput) (*ListOutput, error)
}

// ListPages calls fn with each page of the listing in (from in.Token on), in
// order, and keeps one request ahead: the next page is asked for as soon as
// the current answer names it (with ListObjectsV2 before the rest of that
// answer is decoded), so the server prepares page k+1 while page k is
// decoded and handed to fn. No more than two requests are in flight, and no
// page is asked for before fn has taken the one before the page in hand.
// An error from List or from fn ends the listing and is returned; a request
// still in flight then is cancelled. in.OnNextToken is ListPages' own.
func ListPages(ctx context.Context, l Lister, in ListInput, fn func(*ListOutput) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cur := startPage(ctx, l, in, in.Token)
	var next *pageCall
	for {
		// Wait for the page, asking for the one after it once it is named.
		early := cur.early
		for waiting := true; waiting; {
			select {
			case t := <-early:
				early = nil
				next = startPage(ctx, l, in, t)
			case <-cur.done:
				waiting = false
			}
		}
		if cur.err != nil {
			return cur.err
		}
		out := cur.out
		if out.NextToken != "" && out.NextToken == cur.token {
			return errors.New("list: the server answered a page with its own token; the listing does not advance")
		}
		if next != nil && next.token != out.NextToken {
			next.cancel() // named early, then not the way on after all
			next = nil
		}
		if next == nil && out.NextToken != "" {
			next = startPage(ctx, l, in, out.NextToken)
		}
		if err := fn(out); err != nil {
			return err
		}
		if next == nil {
			return nil
		}
		cur, next = next, nil
	}
}

// pageCall is one List request of ListPages.
type pageCall struct {
	token  string
	early  chan string // the next page's token, when named early
	done   chan struct{}
	out    *ListOutput
	err    error
	cancel context.CancelFunc
}

func startPage(ctx context.Context, l Lister, in ListInput, token string) *pageCall {
	ctx, cancel := context.WithCancel(ctx)
	c := &pageCall{token: token, early: make(chan string, 1), done: make(chan struct{}), cancel: cancel}
	in.Token = token
	in.OnNextToken = func(t string) {
		select {
		case c.early <- t:
		default:
		}
	}
	go func() {
		defer close(c.done)
		defer cancel()
		c.out, c.err = l.List(ctx, &in)
	}()
	return c
}
