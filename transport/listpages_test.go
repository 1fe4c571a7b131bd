package transport

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"
)

// pagedLister serves n pages of one key each; page i's token is "i". Each
// List names the next page early when early is set, then, when wait is set,
// does not answer until the next page has been asked for.
type pagedLister struct {
	n           int
	early, wait bool
	lie         bool // name page i+2 early instead of i+1
	failAt      int  // page that fails (0: none)

	mu     sync.Mutex
	asked  map[int]chan struct{}
	tokens []string
}

func (l *pagedLister) askedFor(i int) chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.asked == nil {
		l.asked = map[int]chan struct{}{}
	}
	if l.asked[i] == nil {
		l.asked[i] = make(chan struct{})
	}
	return l.asked[i]
}

func (l *pagedLister) List(ctx context.Context, in *ListInput) (*ListOutput, error) {
	i := 0
	if in.Token != "" {
		i, _ = strconv.Atoi(in.Token)
	}
	l.mu.Lock()
	l.tokens = append(l.tokens, in.Token)
	l.mu.Unlock()
	l.markAsked(i)
	if i == l.failAt && i > 0 {
		return nil, errors.New("page failed")
	}
	out := &ListOutput{Objects: []ObjectInfo{{Key: fmt.Sprint("k", i)}}}
	if i+1 < l.n {
		out.NextToken = strconv.Itoa(i + 1)
		if l.early && in.OnNextToken != nil {
			named := i + 1
			if l.lie {
				named = i + 2
			}
			in.OnNextToken(strconv.Itoa(named))
			if l.wait && !l.lie {
				select {
				case <-l.askedFor(i + 1):
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(10 * time.Second):
					return nil, errors.New("the next page was not asked for while this one was read")
				}
			}
		}
	}
	return out, nil
}

func (l *pagedLister) markAsked(i int) {
	ch := l.askedFor(i)
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-ch:
	default:
		close(ch)
	}
}

func collect(t *testing.T, l Lister) ([]string, error) {
	var keys []string
	err := ListPages(context.Background(), l, ListInput{}, func(out *ListOutput) error {
		for _, o := range out.Objects {
			keys = append(keys, o.Key)
		}
		return nil
	})
	return keys, err
}

func wantKeys(n int) string {
	var keys []string
	for i := 0; i < n; i++ {
		keys = append(keys, fmt.Sprint("k", i))
	}
	return fmt.Sprint(keys)
}

// The next page is asked for while the current answer is still being read,
// once that answer names it.
func TestListPagesAsksAheadWhenNamedEarly(t *testing.T) {
	l := &pagedLister{n: 6, early: true, wait: true}
	keys, err := collect(t, l)
	if err != nil || fmt.Sprint(keys) != wantKeys(6) {
		t.Fatalf("%v %v", keys, err)
	}
	if len(l.tokens) != 6 {
		t.Errorf("%d requests for 6 pages: %q", len(l.tokens), l.tokens)
	}
}

// A page named early that turns out not to be the next one is dropped, and
// the listing follows NextToken.
func TestListPagesFollowsNextTokenOverAnEarlyName(t *testing.T) {
	l := &pagedLister{n: 5, early: true, lie: true}
	keys, err := collect(t, l)
	if err != nil || fmt.Sprint(keys) != wantKeys(5) {
		t.Fatalf("%v %v", keys, err)
	}
}

// Without early names, pages still come in order, each asked for once.
func TestListPagesWithoutEarlyNames(t *testing.T) {
	l := &pagedLister{n: 4}
	keys, err := collect(t, l)
	if err != nil || fmt.Sprint(keys) != wantKeys(4) || len(l.tokens) != 4 {
		t.Fatalf("%v %v, %d requests", keys, err, len(l.tokens))
	}
}

// A failed page ends the listing with its error, after the pages before it;
// an error from fn ends it too, and nothing is read past one page ahead.
func TestListPagesErrors(t *testing.T) {
	l := &pagedLister{n: 6, early: true, failAt: 3}
	keys, err := collect(t, l)
	if err == nil || fmt.Sprint(keys) != wantKeys(3) {
		t.Fatalf("%v %v", keys, err)
	}
	l = &pagedLister{n: 6}
	stop := errors.New("stop")
	pages := 0
	err = ListPages(context.Background(), l, ListInput{}, func(*ListOutput) error {
		pages++
		if pages == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || pages != 2 {
		t.Fatalf("fn error: %v after %d pages", err, pages)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.tokens) > 3 {
		t.Errorf("%d pages asked for when fn stopped at the second", len(l.tokens))
	}
}

// ListObjectsV2 answers name the next page before their keys.
func TestListNamesTheNextPageEarly(t *testing.T) {
	c := newS3Client(t)
	putMany(t, c, listingKeys(30))
	var named []string
	out, err := c.List(testCtx(t), &ListInput{MaxKeys: 10, OnNextToken: func(tok string) { named = append(named, tok) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(named) != 1 || named[0] != out.NextToken || out.NextToken == "" {
		t.Fatalf("named early %q, NextToken %q", named, out.NextToken)
	}
}

// stuckLister answers every page with the token it was asked for.
type stuckLister struct{ calls int }

func (l *stuckLister) List(ctx context.Context, in *ListInput) (*ListOutput, error) {
	l.calls++
	return &ListOutput{Objects: []ObjectInfo{{Key: "k"}}, NextToken: "same"}, nil
}

// A server that answers a page with its own token ends the listing with an
// error instead of looping.
func TestListPagesStopsWhenTheListingDoesNotAdvance(t *testing.T) {
	l := &stuckLister{}
	err := ListPages(context.Background(), l, ListInput{}, func(*ListOutput) error { return nil })
	if err == nil || l.calls > 3 {
		t.Fatalf("%v after %d calls", err, l.calls)
	}
}
