package fs

import (
	"context"
	"path"
	"strings"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"

	"cosmount/transport"
)

// A rename copies the object to its new name and then deletes the old one.
// The delete runs after the rename has returned: a program that renames
// many files one after the other (rsync, which writes each file under a
// temporary name) waits for one round trip less per file. Until the delete
// is done the old name is hidden from listings, a lookup that must ask the
// bucket waits for it (the rename left the name absent in the stat cache
// before), and every request that would make an object under it (a PUT, a
// multipart upload, a copy) waits for it first, so that the delete can
// never take an object made through this mount after the rename. A
// directory emptied or renamed waits for the deletes under it. The unmount
// waits for them all.

// pendingDelete is the deferred delete of one key; done closes when it is
// over, whether it succeeded or not.
type pendingDelete struct{ done chan struct{} }

// deleteLater deletes key in the background (see above).
func (f *FS) deleteLater(key string) {
	f.hiddenMu.Lock()
	p, prev := f.beginDeleteLocked(key)
	f.bg.Add(1) // under hiddenMu: see waitBackground
	f.hiddenMu.Unlock()
	go func() {
		defer f.bg.Done()
		if prev != nil {
			<-prev.done
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := f.bucket.Delete(ctx, key)
		cancel()
		if err != nil {
			f.log.Warn("deleting the old name of a renamed file failed; the object stays under it", "key", key, "err", err)
		}
		f.endDelete(key, p, err == nil)
	}()
}

// beginDeleteLocked registers a pending delete of key, called with
// hiddenMu held; the delete waits for prev, if any, before it is sent.
func (f *FS) beginDeleteLocked(key string) (p, prev *pendingDelete) {
	p = &pendingDelete{done: make(chan struct{})}
	prev = f.deleting[key]
	f.deleting[key] = p
	return p, prev
}

// endDelete ends the pending delete p of key.
func (f *FS) endDelete(key string, p *pendingDelete, deleted bool) {
	e, ok := f.stats.fresh(key)
	switch {
	case deleted && (!ok || !e.exists):
		// Listings sent before now may still hold the key: a negative
		// entry learned now makes them skip it (see absorbPage).
		f.stats.put(key, objMeta{}, false, f.opt.NegativeTTL)
	case !deleted && ok && !e.exists:
		// The object stays under key: the absence the rename recorded
		// goes, and the name is looked up in the bucket again.
		f.stats.forget(key)
	}
	f.namespaceChanged()
	f.hiddenMu.Lock()
	if f.deleting[key] == p {
		delete(f.deleting, key)
	}
	f.hiddenMu.Unlock()
	close(p.done)
	if !deleted {
		// Only now: a lookup of the name waiting for the delete holds
		// the directory's lock in the kernel, which the notice takes.
		f.forgetKernelEntry(key)
	}
}

// forgetKernelEntry tells the kernel to drop its entry of key's name (a
// cached absence, after a failed delete), so that the next lookup comes to
// the mount. It must not be called while a request of this mount that
// holds the directory's lock waits for the caller.
func (f *FS) forgetKernelEntry(key string) {
	rel, ok := strings.CutPrefix(key, f.opt.Prefix)
	if !ok {
		return
	}
	dir, name := path.Split(rel)
	if d := f.dirAt(strings.TrimSuffix(dir, "/")); d != nil {
		d.NotifyEntry(name) // fails harmlessly when the kernel holds no entry
	}
}

// dirAt is the node of the directory dir (a path from the root, "" for the
// root), or nil.
func (f *FS) dirAt(dir string) *gofs.Inode {
	d := f.root.EmbeddedInode()
	for _, c := range strings.Split(dir, "/") {
		if c == "" {
			continue
		}
		if d = d.GetChild(c); d == nil {
			return nil
		}
	}
	return d
}

// awaitDelete waits until no delete of key is pending, or with under, of
// no key that starts with it.
func (f *FS) awaitDelete(ctx context.Context, key string, under bool) error {
	for {
		f.hiddenMu.Lock()
		p := f.deleting[key]
		if p == nil && under {
			for k, d := range f.deleting {
				if strings.HasPrefix(k, key) {
					p = d
					break
				}
			}
		}
		f.hiddenMu.Unlock()
		if p == nil {
			return nil
		}
		f.deleteWaits.Add(1)
		select {
		case <-p.done:
			f.deleteWaits.Add(-1)
		case <-ctx.Done():
			f.deleteWaits.Add(-1)
			return ctx.Err()
		}
	}
}

// fencedBucket, fencedUploads and fencedCopies are the bucket as the
// filesystem uses it: a request that makes an object waits for a pending
// delete of its key.
type fencedBucket struct {
	Bucket
	f *FS
}

func (b fencedBucket) Put(ctx context.Context, in *transport.PutInput) (*transport.PutOutput, error) {
	if err := b.f.awaitDelete(ctx, in.Key, false); err != nil {
		return nil, err
	}
	return b.Bucket.Put(ctx, in)
}

type fencedUploads struct {
	Uploads
	f *FS
}

func (u fencedUploads) Begin(ctx context.Context, key, contentType string, meta map[string]string) (*transport.MultipartWriter, error) {
	if err := u.f.awaitDelete(ctx, key, false); err != nil {
		return nil, err
	}
	return u.Uploads.Begin(ctx, key, contentType, meta)
}

func (u fencedUploads) Resume(ctx context.Context, key, uploadID string) (*transport.MultipartWriter, error) {
	if err := u.f.awaitDelete(ctx, key, false); err != nil {
		return nil, err
	}
	return u.Uploads.Resume(ctx, key, uploadID)
}

type fencedCopies struct {
	Copies
	f *FS
}

func (c fencedCopies) Copy(ctx context.Context, in *transport.CopyObjectInput) (*transport.CopyOutput, error) {
	if err := c.f.awaitDelete(ctx, in.DstKey, false); err != nil {
		return nil, err
	}
	return c.Copies.Copy(ctx, in)
}
