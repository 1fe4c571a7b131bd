package transport

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// TestBadInput: calls that cannot be right are refused before any request.
func TestBadInput(t *testing.T) {
	f := newCOSFake(t)
	c := f.client(t)
	ctx := testCtx(t)
	for name, call := range map[string]func() error{
		"empty key": func() error { _, err := c.Head(ctx, &HeadInput{}); return err },
		"short body": func() error {
			_, err := c.Put(ctx, &PutInput{Key: "k", Body: strings.NewReader("abc"), Size: 4})
			return err
		},
		"nil body": func() error { _, err := c.Put(ctx, &PutInput{Key: "k", Size: 4}); return err },
		"bad metadata name": func() error {
			_, err := c.Put(ctx, &PutInput{Key: "k", Body: strings.NewReader(""), Metadata: map[string]string{"a b": "x"}})
			return err
		},
		"negative offset": func() error { _, err := c.Get(ctx, &GetInput{Key: "k", Offset: -1}); return err },
		"part number": func() error {
			_, err := c.UploadPart(ctx, &UploadPartInput{Key: "k", UploadID: "u", PartNumber: 10001, Body: bytes.NewReader(nil)})
			return err
		},
		"no upload id":  func() error { return c.AbortMultipart(ctx, "k", "") },
		"no parts":      func() error { _, err := c.CompleteMultipart(ctx, &CompleteInput{Key: "k", UploadID: "u"}); return err },
		"invalid utf-8": func() error { return c.Delete(ctx, "k\xff") },
		"duplicate part": func() error {
			_, err := c.CompleteMultipart(ctx, &CompleteInput{Key: "k", UploadID: "u", Parts: []Part{{PartNumber: 1}, {PartNumber: 1}}})
			return err
		},
	} {
		if err := call(); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if recs := f.records(); len(recs) != 0 {
		t.Errorf("%d requests sent for bad input", len(recs))
	}
	// The body is sent from where it stands, Size < 0 meaning to its end.
	r := strings.NewReader("skip:body")
	r.Seek(5, 0)
	if _, err := c.Put(ctx, &PutInput{Key: "k", Body: r, Size: -1}); err != nil {
		t.Fatal(err)
	}
	if recs := f.records(); len(recs) != 1 || string(recs[0].Body) != "body" {
		t.Errorf("sent %q", recs[0].Body)
	}
}

// TestGetRangeIgnored: a server that ignores Range and answers 200 with the
// whole object, with or without a Content-Length (chunked), gives exactly
// the range asked for; without a Content-Length the object's end ends the
// body, with one a body cut short is an error.
func TestGetRangeIgnored(t *testing.T) {
	f := newCOSFake(t)
	c := f.client(t)
	ctx := testCtx(t)
	data := make([]byte, 1000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	var mode atomic.Value // "chunked", "length" or "cut"
	f.SetHook(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		if r.Method != http.MethodGet {
			return false
		}
		w.Header().Set("ETag", `"etag"`)
		switch mode.Load() {
		case "chunked":
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush() // no Content-Length
			w.Write(data)
		case "length":
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.Write(data)
		case "cut":
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.Write(data[:500])
			w.(http.Flusher).Flush()
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		}
		return true
	})
	read := func(off, n int64) ([]byte, int64, error) {
		out, err := c.Get(ctx, &GetInput{Key: "k", Offset: off, Length: n})
		if err != nil {
			return nil, 0, err
		}
		defer out.Body.Close()
		b, err := io.ReadAll(out.Body)
		return b, out.ContentLength, err
	}
	for _, m := range []string{"chunked", "length"} {
		mode.Store(m)
		for _, tc := range []struct{ off, n int64 }{{0, 100}, {10, 20}, {900, 100}, {950, 100}} {
			want := data[tc.off:min(tc.off+tc.n, int64(len(data)))]
			got, _, err := read(tc.off, tc.n)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s: %d+%d: %d bytes (%v), want %d", m, tc.off, tc.n, len(got), err, len(want))
			}
		}
	}
	mode.Store("chunked")
	if _, n, _ := read(10, 20); n != -1 {
		t.Errorf("chunked: ContentLength %d, want -1 (the object may end first)", n)
	}
	mode.Store("cut")
	if got, _, err := read(10, 900); err == nil {
		t.Errorf("a body cut short read as %d bytes without an error", len(got))
	}
}

// TestDeleteManyKeysXMLCannotHold: keys with characters XML 1.0 cannot
// carry go one DELETE each (in the batch's XML they became U+FFFD: another
// key was deleted, or none); the others go in one batch.
func TestDeleteManyKeysXMLCannotHold(t *testing.T) {
	f := newCOSFake(t)
	c := f.client(t)
	odd := []string{"a\x01b", "esc\x1b[0m", "bell\x07", "x\uffff"}
	plain := []string{"plain", "dir/é & <x>", "tab\tnl\ncr\r"}
	decoy := "a\ufffdb" // what "a\x01b" turns into in encoding/xml
	for _, k := range append(append(append([]string{}, odd...), plain...), decoy) {
		f.Put(k, []byte("x"), nil)
	}
	f.records()
	failed, err := c.DeleteMany(testCtx(t), append(append(append([]string{}, plain[:1]...), odd...), plain[1:]...))
	if err != nil || len(failed) != 0 {
		t.Fatalf("delete many: %v %+v", err, failed)
	}
	for _, k := range append(append([]string{}, odd...), plain...) {
		if _, ok := f.Object(k); ok {
			t.Errorf("%q not deleted", k)
		}
	}
	if _, ok := f.Object(decoy); !ok {
		t.Errorf("%q deleted in place of another key", decoy)
	}
	var posts, deletes int
	for _, r := range f.records() {
		switch r.Method {
		case http.MethodPost:
			posts++
		case http.MethodDelete:
			deletes++
		}
	}
	if posts != 1 || deletes != len(odd) {
		t.Errorf("%d batch requests and %d single DELETEs, want 1 and %d", posts, deletes, len(odd))
	}

	// A key refused on its own comes back as a failed key.
	f.Put("locked\x01", []byte("x"), nil)
	f.SetHook(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		if r.Method != http.MethodDelete {
			return false
		}
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`))
		return true
	})
	failed, err = c.DeleteMany(testCtx(t), []string{"locked\x01"})
	if err != nil || len(failed) != 1 || failed[0].Key != "locked\x01" || failed[0].Code != "AccessDenied" {
		t.Errorf("refused single delete: %+v %v", failed, err)
	}
}
