package fs_test

import (
	"slices"
	"testing"

	cfs "cosmount/fs"
)

func TestMountIDs(t *testing.T) {
	info := `22 1 0:21 / /proc rw,nosuid shared:12 - proc proc rw
97 22 0:52 / /tmp/a\040b rw,nosuid,nodev - fuse.cosmount bkt rw,user_id=0
98 22 0:52 / /srv/bind rw,nosuid,nodev - fuse.cosmount bkt rw,user_id=0
99 22 0:53 / /tmp/other rw,nosuid,nodev - fuse.cosmount bkt2 rw,user_id=0
`
	if got := cfs.MountIDs(info, "/tmp/a b"); !slices.Equal(got, []int{97, 98}) {
		t.Errorf("ids of /tmp/a b: %v, want [97 98] (the mount and its bind mount)", got)
	}
	if got := cfs.MountIDs(info, "/tmp/nothing"); len(got) != 0 {
		t.Errorf("ids of a path nothing is mounted at: %v", got)
	}
	stacked := info + "100 97 0:54 / /tmp/a\\040b rw - fuse.cosmount other rw\n"
	for _, tc := range []struct {
		info, at string
		want     int
	}{{info, "/tmp/a b", 97}, {stacked, "/tmp/a b", 100}, {info, "/tmp/nothing", -1}} {
		if got := cfs.TopMountAt(tc.info, tc.at); got != tc.want {
			t.Errorf("top mount at %q: %d, want %d", tc.at, got, tc.want)
		}
	}
}

func TestParseFdinfo(t *testing.T) {
	flags, mnt, ino, ok := cfs.ParseFdinfo("pos:\t0\nflags:\t0100001\nmnt_id:\t97\nino:\t42\n")
	if !ok || flags != 0o100001 || mnt != 97 || ino != 42 {
		t.Errorf("got %o %d %d %v", flags, mnt, ino, ok)
	}
	if _, _, _, ok := cfs.ParseFdinfo("pos:\t0\nflags:\t02\n"); ok {
		t.Error("fdinfo without mnt_id and ino parsed")
	}
	if _, _, _, ok := cfs.ParseFdinfo("pos:\t0\nflags:\tzz\nmnt_id:\t1\nino:\t2\n"); ok {
		t.Error("bad flags parsed")
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{
		`/mnt/plain`:          "/mnt/plain",
		`/mnt/a\040b`:         "/mnt/a b",
		`/mnt/tab\011nl\012`:  "/mnt/tab\tnl\n",
		`/mnt/back\134slash`:  `/mnt/back\slash`,
		`/mnt/not\08`:         `/mnt/not\08`,
		`/mnt/short\04`:       `/mnt/short\04`,
		`/mnt/trailing\`:      `/mnt/trailing\`,
		`\040\040`:            "  ",
		`/mnt/high\777value`:  `/mnt/high\777value`,
		`/mnt/ascii\101\102C`: "/mnt/asciiABC",
	} {
		if got := cfs.UnescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMountedAt(t *testing.T) {
	info := `22 1 0:21 / /proc rw,nosuid shared:12 - proc proc rw
97 22 0:52 / /tmp/a\040b rw,nosuid,nodev shared:3 - fuse.cosmount bkt rw,user_id=0
98 22 0:53 / /tmp/c rw - tmpfs tmpfs rw
`
	for path, want := range map[string]string{"/tmp/a b": "fuse.cosmount", "/tmp/c": "tmpfs", "/proc": "proc", "/tmp": ""} {
		got, ok := cfs.MountedAtIn(info, path)
		if got != want || ok != (want != "") {
			t.Errorf("MountedAtIn(%q) = %q %v, want %q", path, got, ok, want)
		}
	}
}
