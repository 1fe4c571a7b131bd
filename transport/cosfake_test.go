package transport

import (
	"net/http"
	"testing"
	"time"

	"cosmount/auth"
	"cosmount/internal/cosfake"
)

// cosFake is the in-process COS bucket (internal/cosfake) with what this
// package's tests need: a client of this package dialled to it. The fake
// checks the Host, recomputes the q-sign-algorithm=sha1 signature, checks
// that the sub-resource comes first in the query and COS's header
// spellings, and records every request.
const (
	cosBucket = cosfake.Bucket
	cosRegion = cosfake.Region
	cosHost   = cosfake.Host
)

type cosFake struct{ *cosfake.Fake }

type cfRecord = cosfake.Record

func newCOSFake(t testing.TB) *cosFake {
	return &cosFake{cosfake.New(t, cosfake.DefaultCredentials())}
}

// client is a cos-flavour client whose requests carry COS's real host
// names but are dialled to the fake.
func (f *cosFake) client(t testing.TB, mod ...func(*Config)) *Client {
	t.Helper()
	tr := DefaultTransport()
	tr.Proxy = nil
	tr.DialContext = f.Dial
	t.Cleanup(tr.CloseIdleConnections)
	cfg := Config{Flavor: FlavorCOS, Bucket: cosBucket, Region: cosRegion, Protocol: "http",
		Credentials: auth.NewStatic(f.getCred()), HTTPClient: &http.Client{Transport: tr}}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.backoffBase, c.backoffCap = time.Millisecond, 10*time.Millisecond
	return c
}

func (f *cosFake) getCred() auth.Credentials { return f.Credentials() }

// setCred changes the keys the fake accepts (and new clients get).
func (f *cosFake) setCred(change func(*auth.Credentials)) { f.SetCredentials(change) }

// records returns the requests received so far and forgets them.
func (f *cosFake) records() []cfRecord { return f.Records() }

func crcOf(b []byte) string { return cosfake.CRC64(b) }

func parseRange(h string, size int64) (lo, hi int64, ranged, ok bool) {
	return cosfake.ParseRange(h, size)
}

func cfXML(w http.ResponseWriter, v any) { cosfake.WriteXML(w, v) }
