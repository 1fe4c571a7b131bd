package transport

import (
	"errors"
	"strings"
	"testing"
	"time"

	"cosmount/auth"
)

var testCreds = auth.NewStatic(auth.Credentials{SecretID: "AKIDexample", SecretKey: "topsecretvalue"})

func TestConfigEndpoints(t *testing.T) {
	for _, tc := range []struct {
		name            string
		cfg             Config
		url, copySource string
		scheme          string
	}{
		{"cos default", Config{Bucket: "examplebucket-1250000000", Region: "ap-guangzhou"},
			"https://examplebucket-1250000000.cos.ap-guangzhou.myqcloud.com/a%20b",
			"examplebucket-1250000000.cos.ap-guangzhou.myqcloud.com/a%20b", "https"},
		{"cos http", Config{Bucket: "b-1", Region: "ap-beijing", Protocol: "http"},
			"http://b-1.cos.ap-beijing.myqcloud.com/a%20b", "b-1.cos.ap-beijing.myqcloud.com/a%20b", "http"},
		{"cos accelerate", Config{Bucket: "b-1", Region: "ap-beijing", UseAccelerate: true},
			"https://b-1.cos.accelerate.myqcloud.com/a%20b", "b-1.cos.ap-beijing.myqcloud.com/a%20b", "https"},
		{"cos custom domain", Config{Bucket: "b-1", Region: "ap-beijing", Domain: "{Bucket}.cos-internal.{Region}.tencentcos.cn"},
			"https://b-1.cos-internal.ap-beijing.tencentcos.cn/a%20b", "b-1.cos-internal.ap-beijing.tencentcos.cn/a%20b", "https"},
		{"cos endpoint", Config{Flavor: FlavorCOS, Bucket: "b-1", Region: "ap-beijing", Endpoint: "http://10.1.2.3:8080"},
			"http://10.1.2.3:8080/a%20b", "b-1.cos.ap-beijing.myqcloud.com/a%20b", "http"},
		{"s3 path style", Config{Bucket: "bucket", Endpoint: "https://s3.example.com", PathStyle: true},
			"https://s3.example.com/bucket/a%20b", "/bucket/a%20b", "https"},
		{"s3 virtual host", Config{Flavor: FlavorS3, Bucket: "bucket", Endpoint: "http://s3.example.com:9000/"},
			"http://bucket.s3.example.com:9000/a%20b", "/bucket/a%20b", "http"},
		{"s3 ip endpoint is path style", Config{Bucket: "bucket", Endpoint: "http://127.0.0.1:7070"},
			"http://127.0.0.1:7070/bucket/a%20b", "/bucket/a%20b", "http"},
		{"s3 aws", Config{Flavor: FlavorS3, Bucket: "bucket", Region: "eu-west-1"},
			"https://bucket.s3.eu-west-1.amazonaws.com/a%20b", "/bucket/a%20b", "https"},
	} {
		tc.cfg.Credentials = testCreds
		c, err := New(tc.cfg)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := c.url(&request{key: "a b"}).String(); got != tc.url {
			t.Errorf("%s: URL %s, want %s", tc.name, got, tc.url)
		}
		if got := c.copySource("a b"); got != tc.copySource {
			t.Errorf("%s: copy source %s, want %s", tc.name, got, tc.copySource)
		}
		if c.scheme != tc.scheme {
			t.Errorf("%s: scheme %s", tc.name, c.scheme)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := New(Config{Bucket: "b-1", Region: "ap-beijing", Credentials: testCreds})
	if err != nil {
		t.Fatal(err)
	}
	if c.Flavor() != FlavorCOS || c.maxRetries != 3 || c.timeout != 60*time.Second || c.hdr != "x-cos-" {
		t.Errorf("defaults: %v %d %v %s", c.Flavor(), c.maxRetries, c.timeout, c.hdr)
	}
	c, err = New(Config{Bucket: "bucket", Endpoint: "http://h:1", Credentials: testCreds, MaxRetries: -1, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if c.Flavor() != FlavorS3 || c.maxRetries != 0 || c.timeout != time.Second || c.region != "us-east-1" || c.hdr != "x-amz-" {
		t.Errorf("s3: %v %d %v %s", c.Flavor(), c.maxRetries, c.timeout, c.region)
	}
	tr := DefaultTransport()
	if tr.MaxIdleConnsPerHost < 64 || !tr.DisableCompression || tr.WriteBufferSize < 256<<10 || tr.ReadBufferSize > 64<<10 || tr.TLSNextProto == nil {
		t.Errorf("default transport: %+v", tr)
	}
}

func TestConfigRefused(t *testing.T) {
	cos := func(mod func(*Config)) Config {
		c := Config{Flavor: FlavorCOS, Bucket: "examplebucket-1250000000", Region: "ap-guangzhou", Credentials: testCreds}
		mod(&c)
		return c
	}
	s3 := func(mod func(*Config)) Config {
		c := Config{Flavor: FlavorS3, Bucket: "bucket", Endpoint: "http://127.0.0.1:7070", Credentials: testCreds}
		mod(&c)
		return c
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{cos(func(c *Config) { c.Bucket = "examplebucket" }), `COS bucket name "examplebucket" is not name-appid`},
		{cos(func(c *Config) { c.Bucket = "Example-125" }), `COS bucket name "Example-125"`},
		{cos(func(c *Config) { c.Bucket = "-x-125" }), `COS bucket name "-x-125"`},
		{cos(func(c *Config) { c.Bucket = "ex_ample-125" }), `COS bucket name "ex_ample-125"`},
		{cos(func(c *Config) { c.Bucket = "x-12a" }), `COS bucket name "x-12a"`},
		{cos(func(c *Config) { c.Region = "" }), "COS needs a region"},
		{cos(func(c *Config) { c.Region = "Guangzhou" }), `COS region "Guangzhou" is not like ap-guangzhou`},
		{cos(func(c *Config) { c.Region = "ap guangzhou" }), `COS region "ap guangzhou"`},
		{cos(func(c *Config) { c.Domain = "{Region}.example.com" }), "lacks {Bucket}"},
		{cos(func(c *Config) { c.Domain = "https://{Bucket}.example.com" }), "is a URL"},
		{cos(func(c *Config) { c.Domain = "{Bucket}.{Zone}.example.com" }), "unknown placeholder {Zone}"},
		{cos(func(c *Config) { c.Domain = "{Bucket}.exa mple.com" }), "does not make a host name"},
		{cos(func(c *Config) { c.Domain = "{Bucket}.x.com"; c.UseAccelerate = true }), "choose one"},
		{cos(func(c *Config) { c.PathStyle = true }), "path-style"},
		{cos(func(c *Config) { c.Endpoint = "ftp://x" }), "must start with http:// or https://"},
		{cos(func(c *Config) { c.Protocol = "ftp" }), `protocol "ftp"`},
		{cos(func(c *Config) { c.Credentials = nil }), "no credentials provider"},
		{cos(func(c *Config) { c.Timeout = -time.Second }), "negative"},
		{cos(func(c *Config) { c.Flavor = "gcs" }), `flavor "gcs"`},
		{s3(func(c *Config) { c.Bucket = "ab" }), `S3 bucket name "ab"`},
		{s3(func(c *Config) { c.Bucket = strings.Repeat("a", 64) }), "S3 bucket name"},
		{s3(func(c *Config) { c.Bucket = "Bucket" }), `S3 bucket name "Bucket"`},
		{s3(func(c *Config) { c.Bucket = "a..b" }), `S3 bucket name "a..b"`},
		{s3(func(c *Config) { c.Region = "US East" }), `S3 region "US East"`},
		{s3(func(c *Config) { c.Endpoint = "127.0.0.1:7070" }), "must start with http:// or https://"},
		{s3(func(c *Config) { c.Endpoint = "http://" }), "has no valid host"},
		{s3(func(c *Config) { c.Endpoint = "http://h/path" }), "no path, query or fragment"},
		{s3(func(c *Config) { c.Endpoint = "http://h?x=1" }), "no path, query or fragment"},
		{s3(func(c *Config) { c.Endpoint = "http://user:hunter2@h" }), "user information"},
		{s3(func(c *Config) { c.Endpoint = "http://h:1\x7f" }), "is not a URL"},
		{s3(func(c *Config) { c.Endpoint = "http://u:hunter2@h:1\x7f" }), "is not a URL"},
		{s3(func(c *Config) { c.Endpoint = "u:hunter2@h" }), "must start with"},
		{s3(func(c *Config) { c.Domain = "{Bucket}.x" }), "for the cos flavour"},
	} {
		_, err := New(tc.cfg)
		if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
		if err != nil && (strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "topsecret")) {
			t.Errorf("error shows a secret: %v", err)
		}
	}
}
