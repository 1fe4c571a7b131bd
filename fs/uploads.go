package fs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"

	"cosmount/transport"
)

// Every multipart upload in progress is noted in <cache dir>/uploads until
// it completes or is aborted. A mount that ends without either (kill -9,
// a crash, power lost while a file was written) leaves its note behind, and
// the next mount on the same cache dir aborts those uploads before it is
// ready, so that no parts stay stored (and billed) in the bucket.

// uploadNote is one multipart upload in progress.
type uploadNote struct {
	Key      string `json:"key"`
	UploadID string `json:"upload_id"`
}

func (f *FS) uploadNotesDir() string { return filepath.Join(f.opt.CacheDir, "uploads") }

func uploadNotePath(dir, id string) string {
	sum := sha256.Sum256([]byte(id))
	return filepath.Join(dir, hex.EncodeToString(sum[:16])+".json")
}

// beginUpload starts a multipart upload of key and keeps a note of it until
// it ends. A note that cannot be written is logged, not fatal: the upload
// itself is fine, only a crash would leave it behind.
func (f *FS) beginUpload(ctx context.Context, key string, meta map[string]string) (*transport.MultipartWriter, error) {
	mw, err := f.up.Begin(ctx, key, "", meta)
	if err != nil {
		return nil, err
	}
	p := uploadNotePath(f.uploadNotesDir(), mw.UploadID())
	if err := writeNote(p, uploadNote{Key: key, UploadID: mw.UploadID()}); err != nil {
		f.log.Warn("multipart upload not noted in the cache dir; a crash now would leave it in the bucket", "key", key, "err", err)
		return mw, nil
	}
	mw.OnEnd(func() { os.Remove(p) })
	return mw, nil
}

func writeNote(p string, n uploadNote) error {
	b, err := json.Marshal(n)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	return writeDurable(p, b)
}

// abortNotedUploads aborts the uploads a previous mount left noted, but
// those in keep (which the journal resumes). One that cannot be aborted now
// keeps its note for the next mount.
func (f *FS) abortNotedUploads(ctx context.Context, keep map[string]bool) {
	dir := f.uploadNotesDir()
	names, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, p := range names {
		b, err := os.ReadFile(p)
		var n uploadNote
		if err == nil {
			err = json.Unmarshal(b, &n)
		}
		if err != nil || uploadNotePath(dir, n.UploadID) != p {
			f.log.Warn("upload note unreadable; left in place", "file", p, "err", err)
			continue
		}
		if !strings.HasPrefix(n.Key, f.opt.Prefix) || keep[n.UploadID] {
			// Another prefix's mount (its own next mount aborts it), or
			// the only copy of parts a journaled file lacks.
			continue
		}
		err = f.bucket.AbortMultipart(ctx, n.Key, n.UploadID)
		if err != nil && !errors.Is(err, transport.ErrNotFound) {
			f.log.Warn("an unfinished multipart upload of an earlier mount could not be aborted; trying again at the next mount", "key", n.Key, "err", err)
			continue
		}
		if err == nil {
			f.log.Info("aborted an unfinished multipart upload of an earlier mount", "key", n.Key)
		}
		os.Remove(p)
	}
}

// abortLater aborts a streamed upload that nothing needs any more, in the
// background; Drain waits for it, so that an unmount leaves no upload behind.
func (f *FS) abortLater(mw *transport.MultipartWriter) {
	f.bg.Add(1)
	go func() {
		defer f.bg.Done()
		_ = mw.Abort(context.Background())
	}()
}
