package fs

import (
	"fmt"
	"testing"
	"time"
)

// The listings waiting for a stat stay bounded however many directories
// are listed within their TTL, and expired ones are swept.
func TestLazyHeadsStayBounded(t *testing.T) {
	defer func(s, m int) { lazySweep, lazyMax = s, m }(lazySweep, lazyMax)
	lazySweep, lazyMax = 1<<8, 1<<10
	group := func(i int) []headJob {
		jobs := make([]headJob, 20)
		for j := range jobs {
			jobs[j].key = fmt.Sprintf("d%d/f%d", i, j)
		}
		return jobs
	}
	var l lazyHeads
	for i := range 1000 {
		l.add(group(i), time.Hour, nil)
		if n := len(l.groups); n > lazyMax {
			t.Fatalf("%d keys after %d listings, want at most %d", n, i+1, lazyMax)
		}
	}
	if !l.has("d999/f0") {
		t.Error("the newest listing is not kept")
	}
	var e lazyHeads
	for i := range 1000 {
		e.add(group(i), -time.Second, nil) // expired at once
	}
	e.add(group(1000), time.Hour, nil)
	if n := len(e.groups); n > 2*lazySweep {
		t.Errorf("%d keys with all but one listing expired, want at most %d", n, 2*lazySweep)
	}
	if !e.has("d1000/f19") {
		t.Error("the live listing is not kept")
	}
}
