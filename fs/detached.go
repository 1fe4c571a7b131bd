package fs

import (
	"slices"
	"strings"
)

// Forgotten files with work pending. The kernel forgets an inode it holds
// no dentry for (memory pressure, drop_caches), whatever the file system
// still has to do for it, and go-fuse then takes the node out of the tree:
// its path becomes a placeholder. A closed file whose upload is pending
// (--write-back-delay, a failed upload, attributes waiting for their
// self-copy) must still go up under its own name, and its name must still
// show it: such a node keeps the key it last had (File.lastKey), is noted
// here, and is put back in the tree by the next lookup of its name.

// pending reports whether n has work left that needs its key: data not
// uploaded, or attributes not written.
func (n *File) pending() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return !n.unlinked && ((n.ws != nil && n.ws.dirty && !n.ws.unlinked) || n.metaDirty)
}

// OnForget implements NodeOnForgetter: a forgotten node with work pending
// is noted under its key.
func (n *File) OnForget() {
	k := n.lastKey.Load()
	if k == nil || !n.pending() {
		return
	}
	f := n.fsys
	f.detachedMu.Lock()
	if f.detached == nil {
		f.detached = map[string]*File{}
	}
	f.detached[*k] = n
	f.detachedMu.Unlock()
}

// takeDetached returns the forgotten node of key if it still has work
// pending, for the caller to put back in the tree. It stays noted until its
// work is done (dropDetached): a lookup racing this one gets the same node.
func (f *FS) takeDetached(key string) *File {
	f.detachedMu.Lock()
	n := f.detached[key]
	f.detachedMu.Unlock()
	if n == nil {
		return nil
	}
	if !n.pending() {
		f.dropDetachedKey(key, n)
		return nil
	}
	return n
}

func (f *FS) dropDetachedKey(key string, n *File) {
	f.detachedMu.Lock()
	if f.detached[key] == n {
		delete(f.detached, key)
	}
	f.detachedMu.Unlock()
}

// dropDetached forgets n here once its work is done. Called with n.mu
// held (detachedMu is a leaf).
func (f *FS) dropDetached(n *File) {
	if k := n.lastKey.Load(); k != nil {
		f.dropDetachedKey(*k, n)
	}
}

// detachedUnder returns the forgotten files with work pending under the
// directory prefix, at any depth, by their key's remainder.
func (f *FS) detachedUnder(prefix string) map[string]*File {
	f.detachedMu.Lock()
	found := map[string]*File{}
	for k, n := range f.detached {
		if rest, ok := strings.CutPrefix(k, prefix); ok && rest != "" {
			found[rest] = n
		}
	}
	f.detachedMu.Unlock()
	for rest, n := range found {
		if !n.pending() {
			delete(found, rest)
		}
	}
	return found
}

// detachedIn returns the names of the forgotten files with work pending
// right under the directory prefix.
func (f *FS) detachedIn(prefix string) []string {
	var names []string
	for rest := range f.detachedUnder(prefix) {
		if !strings.Contains(rest, "/") {
			names = append(names, rest)
		}
	}
	return names
}

// moveDetached follows a directory rename from src to dst (both ending in
// "/") for the forgotten files under it.
func (f *FS) moveDetached(src, dst string) {
	f.detachedMu.Lock()
	var moved []*File
	for k, n := range f.detached {
		if rest, ok := strings.CutPrefix(k, src); ok {
			delete(f.detached, k)
			nk := dst + rest
			f.detached[nk] = n
			n.setKey(nk)
			moved = append(moved, n)
		}
	}
	f.detachedMu.Unlock()
	for _, n := range moved {
		n.mu.Lock()
		if ws := n.ws; ws != nil {
			if rest, ok := strings.CutPrefix(ws.baseKey, src); ok && ws.base.etag != "" {
				ws.baseKey = dst + rest // the rename moved the base too
			}
			if rest, ok := strings.CutPrefix(ws.stray, src); ok {
				ws.stray = dst + rest
			}
		}
		n.mu.Unlock()
		n.rejournal(*n.lastKey.Load(), nil)
	}
}

// setKey records key as n's, for when the tree no longer tells it: when
// the node is made, and by every rename that moves it.
func (n *File) setKey(key string) { n.lastKey.Store(&key) }

// key is n's object key, from its place in the tree, or, if the kernel
// forgot it (the walk up does not reach the root), the key it was given
// last. A node unlinked while open has no key (markUnlinked clears it):
// it gets go-fuse's placeholder path.
func (n *File) key() string {
	root := n.fsys.root.EmbeddedInode()
	var names []string
	ino := n.EmbeddedInode()
	for ino != root {
		name, parent := ino.Parent()
		if parent == nil {
			break
		}
		names = append(names, name)
		ino = parent
	}
	if ino != root {
		if k := n.lastKey.Load(); k != nil {
			return *k
		}
		return n.fsys.keyOf(n.Path(root))
	}
	slices.Reverse(names)
	return n.fsys.keyOf(strings.Join(names, "/"))
}
