package transport

import (
	"bytes"
	"errors"
	"strings"
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
