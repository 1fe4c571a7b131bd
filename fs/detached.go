package fs

import "strings"

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
// pending, and forgets it here: the caller puts it back in the tree.
func (f *FS) takeDetached(key string) *File {
	f.detachedMu.Lock()
	n := f.detached[key]
	delete(f.detached, key)
	f.detachedMu.Unlock()
	if n == nil || !n.pending() {
		return nil
	}
	return n
}

// dropDetached forgets n here once its work is done. Called with n.mu
// held (detachedMu is a leaf).
func (f *FS) dropDetached(n *File) {
	k := n.lastKey.Load()
	if k == nil {
		return
	}
	f.detachedMu.Lock()
	if f.detached[*k] == n {
		delete(f.detached, *k)
	}
	f.detachedMu.Unlock()
}

// detachedIn returns the names of the forgotten files with work pending
// right under the directory prefix.
func (f *FS) detachedIn(prefix string) []string {
	f.detachedMu.Lock()
	defer f.detachedMu.Unlock()
	var names []string
	for k := range f.detached {
		if name, ok := strings.CutPrefix(k, prefix); ok && name != "" && !strings.Contains(name, "/") {
			names = append(names, name)
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
		n.rejournal(*n.lastKey.Load())
	}
}

// setKey records key as n's, for when the tree no longer tells it.
func (n *File) setKey(key string) { n.lastKey.Store(&key) }

// key is n's object key, from its place in the tree, or the key it last
// had if the kernel forgot it (see above).
func (n *File) key() string {
	p := n.Path(n.fsys.root.EmbeddedInode())
	if _, parent := n.Parent(); parent == nil {
		if k := n.lastKey.Load(); k != nil {
			return *k
		}
	}
	k := n.fsys.keyOf(p)
	n.setKey(k)
	return k
}
