package auth

import (
	"net/http"
	"testing"
	"time"
)

// A typical ranged GET of the read path, with a few headers.
func benchRequest(b *testing.B, rawURL string) *http.Request {
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Range", "bytes=8388608-16777215")
	req.Header.Set("If-Match", `"9b2cf535f27731c974343645a3985328"`)
	req.Header.Set("User-Agent", "cosmount")
	return req
}

func BenchmarkSignCOS(b *testing.B) {
	req := benchRequest(b, "https://examplebucket-1250000000.cos.ap-guangzhou.myqcloud.com/photos/2024/IMG 0001.jpg")
	req.Header.Set("x-cos-traffic-limit", "819200")
	cred := Credentials{SecretID: "AKIDexampleexampleexampleexample", SecretKey: "secretsecretsecretsecretsecret12", SessionToken: "token"}
	start := time.Unix(1700000000, 0)
	end := start.Add(time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		SignCOS(req, cred, start, end)
	}
}

func BenchmarkSignV4(b *testing.B) {
	req := benchRequest(b, "http://127.0.0.1:7070/bucket/photos/2024/IMG 0001.jpg")
	cred := Credentials{SecretID: "AKIAIOSFODNN7EXAMPLE", SecretKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}
	tm := time.Unix(1700000000, 0)
	b.ReportAllocs()
	for b.Loop() {
		if err := SignV4(req, cred, "us-east-1", UnsignedPayload, tm); err != nil {
			b.Fatal(err)
		}
	}
}
