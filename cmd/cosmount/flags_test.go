package main

import "testing"

// Sizes read back in the unit they are usually written in, so that --help
// shows "(default 256M)", and a shown value parses to the same size.
func TestSizeStringRoundTrips(t *testing.T) {
	for v, want := range map[size]string{256 << 20: "256M", 256 << 10: "256K", 10 << 30: "10G", 1000: "1000", 0: "0", 1536: "1536"} {
		if got := v.String(); got != want {
			t.Errorf("size(%d).String() = %q, want %q", int64(v), got, want)
		}
		var back size
		if err := back.Set(want); err != nil || back != v {
			t.Errorf("Set(%q) = %d, %v; want %d", want, int64(back), err, int64(v))
		}
	}
}
