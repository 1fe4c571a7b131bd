package auth

import (
	"strings"
	"testing"
	"time"
)

// t0 is the fake "now" of the parsing tests: 2024-01-01T00:00:00Z.
var t0 = time.Unix(1704067200, 0)

const (
	exp1h = "1704070800" // t0 + 1 h
	st0   = "1704067200" // t0
)

func TestParseShapes(t *testing.T) {
	exp := t0.Add(time.Hour)
	cases := []struct {
		name, body  string
		id, key, tk string
		start, end  time.Time
	}{
		{"sdk callback", `{"TmpSecretId":"AKIDa","TmpSecretKey":"k","SecurityToken":"tok","StartTime":` + st0 + `,"ExpiredTime":` + exp1h + `}`,
			"AKIDa", "k", "tok", t0, exp},
		{"sdk callback XCosSecurityToken", `{"TmpSecretId":"AKIDa","TmpSecretKey":"k","XCosSecurityToken":"tok","ExpiredTime":` + exp1h + `}`,
			"AKIDa", "k", "tok", time.Time{}, exp},
		{"numeric strings", `{"TmpSecretId":"AKIDa","TmpSecretKey":"k","SecurityToken":"tok","StartTime":"` + st0 + `","ExpiredTime":" ` + exp1h + `"}`,
			"AKIDa", "k", "tok", t0, exp},
		{"fractional seconds", `{"TmpSecretId":"AKIDa","TmpSecretKey":"k","ExpiredTime":1704070800.5}`,
			"AKIDa", "k", "", time.Time{}, exp.Add(500 * time.Millisecond)},
		{"cam role", `{"TmpSecretId":"AKIDa","TmpSecretKey":"k","Token":"tok","ExpiredTime":` + exp1h + `,"Expiration":"2024-01-01T01:00:00Z","Code":"Success"}`,
			"AKIDa", "k", "tok", time.Time{}, exp},
		{"tencent sts", `{"Response":{"Credentials":{"Token":"tok","TmpSecretId":"AKIDa","TmpSecretKey":"k"},"ExpiredTime":` + exp1h + `,"Expiration":"2024-01-01T01:00:00Z","RequestId":"r"}}`,
			"AKIDa", "k", "tok", time.Time{}, exp},
		{"tencent sts expiration only", `{"Response":{"Credentials":{"Token":"tok","TmpSecretId":"AKIDa","TmpSecretKey":"k"},"Expiration":"2024-01-01T09:00:00+08:00"}}`,
			"AKIDa", "k", "tok", time.Time{}, exp},
		{"helper libs", `{"credentials":{"tmpSecretId":"AKIDa","tmpSecretKey":"k","sessionToken":"tok"},"expiredTime":` + exp1h + `,"expiration":"2024-01-01T01:00:00Z","startTime":` + st0 + `,"requestId":"x"}`,
			"AKIDa", "k", "tok", t0, exp},
		{"go sts lib", `{"Credentials":{"TmpSecretId":"AKIDa","TmpSecretKey":"k","Token":"tok"},"ExpiredTime":` + exp1h + `,"StartTime":` + st0 + `}`,
			"AKIDa", "k", "tok", t0, exp},
		{"aws", `{"Version":1,"AccessKeyId":"AKIA","SecretAccessKey":"k","SessionToken":"tok","Expiration":"2024-01-01T01:00:00Z"}`,
			"AKIA", "k", "tok", time.Time{}, exp},
		{"aws permanent", `{"Version":1,"AccessKeyId":"AKIA","SecretAccessKey":"k"}`,
			"AKIA", "k", "", time.Time{}, time.Time{}},
		{"no token", "\ufeff" + `{"TmpSecretId":"AKIDa","TmpSecretKey":"k","ExpiredTime":` + exp1h + `}` + "\n",
			"AKIDa", "k", "", time.Time{}, exp},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseCredentialsJSON([]byte(tc.body), t0)
			if err != nil {
				t.Fatal(err)
			}
			if c.SecretID != tc.id || c.SecretKey != tc.key || c.SessionToken != tc.tk {
				t.Errorf("got %q %q %q", c.SecretID, c.SecretKey, c.SessionToken)
			}
			if !c.StartTime.Equal(tc.start) || !c.ExpiredTime.Equal(tc.end) {
				t.Errorf("times %v %v, want %v %v", c.StartTime, c.ExpiredTime, tc.start, tc.end)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ name, body, want string }{
		{"empty", "  ", "empty answer"},
		{"html", "<html>502</html>", "not a JSON object"},
		{"array", `[{"TmpSecretId":"a"}]`, "not a JSON object"},
		{"truncated", `{"TmpSecretId":"AKIDa","TmpSecretKey":"k`, "malformed JSON"},
		{"trailing garbage", `{"TmpSecretId":"AKIDa"} x`, "malformed JSON"},
		{"unknown shape", `{"id":"a","key":"b"}`, "unrecognised credentials JSON"},
		{"missing key", `{"TmpSecretId":"AKIDa","ExpiredTime":` + exp1h + `}`, "missing TmpSecretKey"},
		{"empty key", `{"TmpSecretId":"AKIDa","TmpSecretKey":"","ExpiredTime":` + exp1h + `}`, "TmpSecretKey is empty"},
		{"key not string", `{"TmpSecretId":"AKIDa","TmpSecretKey":12,"ExpiredTime":` + exp1h + `}`, "TmpSecretKey is not a string"},
		{"token not string", `{"TmpSecretId":"AKIDa","TmpSecretKey":"k","SecurityToken":{},"ExpiredTime":` + exp1h + `}`, "SecurityToken is not a string"},
		{"missing expiry", `{"TmpSecretId":"AKIDa","TmpSecretKey":"k"}`, "missing ExpiredTime"},
		{"garbage expiry", `{"TmpSecretId":"AKIDa","TmpSecretKey":"k","ExpiredTime":"soon"}`, "ExpiredTime is not a unix time"},
		{"bool expiry", `{"TmpSecretId":"AKIDa","TmpSecretKey":"k","ExpiredTime":true}`, "ExpiredTime is not a unix time"},
		{"millis", `{"TmpSecretId":"AKIDa","TmpSecretKey":"k","ExpiredTime":1704070800000}`, "milliseconds"},
		{"negative", `{"TmpSecretId":"AKIDa","TmpSecretKey":"k","ExpiredTime":-5}`, "not a positive unix time"},
		{"nan", `{"TmpSecretId":"AKIDa","TmpSecretKey":"k","ExpiredTime":"NaN"}`, "ExpiredTime is not a unix time"},
		{"garbage start", `{"TmpSecretId":"AKIDa","TmpSecretKey":"k","StartTime":"x","ExpiredTime":` + exp1h + `}`, "StartTime is not a unix time"},
		{"start after end", `{"TmpSecretId":"AKIDa","TmpSecretKey":"k","StartTime":` + exp1h + `,"ExpiredTime":` + st0 + `}`, "StartTime"},
		{"past", `{"TmpSecretId":"AKIDa","TmpSecretKey":"k","ExpiredTime":1704060000}`, "expired at 2023-12-31T22:00:00Z, 2h0m0s ago"},
		{"expires now", `{"TmpSecretId":"AKIDa","TmpSecretKey":"k","ExpiredTime":` + st0 + `}`, "expired at"},
		{"bad expiration", `{"TmpSecretId":"AKIDa","TmpSecretKey":"k","Expiration":"tomorrow"}`, "Expiration is not an RFC 3339 time"},
		{"cam failure", `{"Code":"Failed","Message":"role not bound","TmpSecretId":"AKIDa"}`, `Code "Failed": role not bound`},
		{"sts error", `{"Response":{"Error":{"Code":"AuthFailure.SecretIdNotFound","Message":"The SecretId is not found"},"RequestId":"req-1"}}`,
			"STS error AuthFailure.SecretIdNotFound: The SecretId is not found (RequestId req-1)"},
		{"sts no credentials", `{"Response":{"RequestId":"r"}}`, "missing Response.Credentials"},
		{"sts credentials not object", `{"Response":{"Credentials":"x"}}`, "Response.Credentials is not a JSON object"},
		{"sts missing id", `{"Response":{"Credentials":{"TmpSecretKey":"k"},"ExpiredTime":` + exp1h + `}}`, "missing Response.Credentials.TmpSecretId"},
		{"sts missing expiry", `{"Response":{"Credentials":{"TmpSecretId":"a","TmpSecretKey":"k"}}}`, "missing Response.ExpiredTime"},
		{"sts bad expiry", `{"Response":{"Credentials":{"TmpSecretId":"a","TmpSecretKey":"k"},"ExpiredTime":"x"}}`, "Response.ExpiredTime is not a unix time"},
		{"helper missing key", `{"credentials":{"tmpSecretId":"a"},"expiredTime":` + exp1h + `}`, "missing credentials.tmpSecretKey"},
		{"helper past", `{"credentials":{"tmpSecretId":"a","tmpSecretKey":"k"},"expiredTime":"1704060000"}`, "expired at"},
		{"aws missing secret", `{"AccessKeyId":"AKIA"}`, "missing SecretAccessKey"},
		{"aws past", `{"AccessKeyId":"AKIA","SecretAccessKey":"k","Expiration":"2023-01-01T00:00:00Z"}`, "expired at 2023-01-01T00:00:00Z"},
		{"null key", `{"TmpSecretId":"AKIDa","TmpSecretKey":null,"ExpiredTime":` + exp1h + `}`, "missing TmpSecretKey"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCredentialsJSON([]byte(tc.body), t0)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestOneLine(t *testing.T) {
	if got := oneLine("  a\x1b[31m\n\tb  ", 100); got != "a [31m b" {
		t.Errorf("got %q", got)
	}
	if got := oneLine(strings.Repeat("é", 300), 200); len([]rune(got)) != 203 || !strings.HasSuffix(got, "...") {
		t.Errorf("got %d runes", len([]rune(got)))
	}
}
