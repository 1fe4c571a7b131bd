package transport

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"
)

const (
	defaultCOSDomain   = "{Bucket}.cos.{Region}.myqcloud.com"
	accelerateCOSHost  = "{Bucket}.cos.accelerate.myqcloud.com"
	defaultS3Region    = "us-east-1"
	defaultTimeout     = 60 * time.Second
	defaultMaxRetries  = 3
	maxDeleteBatch     = 1000
	maxErrorBodyBytes  = 1 << 20
	maxResultBodyBytes = 64 << 20
)

var (
	// COS: name-appid; the name is lowercase letters, digits and hyphens,
	// neither starting nor ending with a hyphen; the appid is digits.
	cosBucketRE = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?-[0-9]+$`)
	// S3: DNS-compatible names, 3..63 characters.
	s3BucketRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	// COS regions: ap-guangzhou, na-siliconvalley, ap-shanghai-fsi, ...
	cosRegionRE = regexp.MustCompile(`^[a-z]+(?:-[a-z0-9]+)+$`)
	s3RegionRE  = regexp.MustCompile(`^[a-z0-9]+(?:-[a-z0-9]+)*$`)
	hostRE      = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?$`)
	placeholder = regexp.MustCompile(`\{[^}]*\}`)
)

func badConfig(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadConfig}, a...)...)
}

// configure checks c.cfg and fills in the client's derived fields.
func (c *Client) configure() error {
	cfg := &c.cfg
	if cfg.Flavor == "" {
		if cfg.Endpoint != "" {
			cfg.Flavor = FlavorS3
		} else {
			cfg.Flavor = FlavorCOS
		}
	}
	if cfg.Credentials == nil {
		return badConfig("no credentials provider")
	}
	if cfg.Timeout < 0 {
		return badConfig("timeout %v is negative", cfg.Timeout)
	}
	c.timeout = cfg.Timeout
	if c.timeout == 0 {
		c.timeout = defaultTimeout
	}
	c.maxRetries = cfg.MaxRetries
	switch {
	case c.maxRetries == 0:
		c.maxRetries = defaultMaxRetries
	case c.maxRetries < 0:
		c.maxRetries = 0
	}
	switch strings.ToLower(cfg.Protocol) {
	case "", "https":
		c.scheme = "https"
	case "http":
		c.scheme = "http"
	default:
		return badConfig("protocol %q is neither http nor https", cfg.Protocol)
	}
	switch cfg.Flavor {
	case FlavorCOS:
		return c.configureCOS()
	case FlavorS3:
		return c.configureS3()
	}
	return badConfig("flavor %q is neither cos nor s3", cfg.Flavor)
}

func (c *Client) configureCOS() error {
	cfg := &c.cfg
	c.hdr = "x-cos-"
	if !cosBucketRE.MatchString(cfg.Bucket) || len(cfg.Bucket) > 60 {
		return badConfig("COS bucket name %q is not name-appid (lowercase letters, digits and hyphens, then a hyphen and the numeric APPID, e.g. examplebucket-1250000000)", cfg.Bucket)
	}
	if !cosRegionRE.MatchString(cfg.Region) {
		if cfg.Region == "" {
			return badConfig("COS needs a region such as ap-guangzhou")
		}
		return badConfig("COS region %q is not like ap-guangzhou (lowercase letters, digits and hyphens)", cfg.Region)
	}
	if cfg.PathStyle {
		return badConfig("COS does not take path-style requests; drop PathStyle (it is for the s3 flavour)")
	}
	c.region = cfg.Region
	c.copyHost = expandDomain(defaultCOSDomain, cfg.Bucket, cfg.Region)
	if cfg.Endpoint != "" {
		u, err := parseEndpoint(cfg.Endpoint)
		if err != nil {
			return err
		}
		c.scheme, c.host = u.Scheme, u.Host
		return nil
	}
	tmpl := cfg.Domain
	switch {
	case cfg.UseAccelerate && tmpl != "":
		return badConfig("both a domain template (%q) and UseAccelerate: choose one", tmpl)
	case cfg.UseAccelerate:
		tmpl = accelerateCOSHost
	case tmpl == "":
		tmpl = defaultCOSDomain
	default:
		if err := checkDomain(tmpl); err != nil {
			return err
		}
		// A custom domain names its own host for copies too (private
		// deployments); the accelerate domain copies from the region's.
		c.copyHost = expandDomain(tmpl, cfg.Bucket, cfg.Region)
	}
	c.host = expandDomain(tmpl, cfg.Bucket, cfg.Region)
	return nil
}

// checkDomain refuses a domain template that cannot make a bucket's host.
func checkDomain(tmpl string) error {
	if strings.Contains(tmpl, "://") {
		return badConfig("domain template %q is a URL; give a host template such as {Bucket}.cos.{Region}.myqcloud.com and choose the scheme with the protocol", tmpl)
	}
	for _, p := range placeholder.FindAllString(tmpl, -1) {
		if p != "{Bucket}" && p != "{Region}" {
			return badConfig("domain template %q has unknown placeholder %s (only {Bucket} and {Region})", tmpl, p)
		}
	}
	if !strings.Contains(tmpl, "{Bucket}") {
		return badConfig("domain template %q lacks {Bucket}: COS addresses buckets by virtual host", tmpl)
	}
	if h := expandDomain(tmpl, "b-1", "r"); !hostRE.MatchString(h) {
		return badConfig("domain template %q does not make a host name (letters, digits, dots, hyphens, optional :port)", tmpl)
	}
	return nil
}

func expandDomain(tmpl, bucket, region string) string {
	return strings.NewReplacer("{Bucket}", bucket, "{Region}", region).Replace(tmpl)
}

func (c *Client) configureS3() error {
	cfg := &c.cfg
	c.hdr = "x-amz-"
	if !s3BucketRE.MatchString(cfg.Bucket) || strings.Contains(cfg.Bucket, "..") {
		return badConfig("S3 bucket name %q is not 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit", cfg.Bucket)
	}
	c.region = cfg.Region
	if c.region == "" {
		c.region = defaultS3Region
	}
	if !s3RegionRE.MatchString(c.region) {
		return badConfig("S3 region %q is not like us-east-1 (lowercase letters, digits and hyphens)", c.region)
	}
	if cfg.Domain != "" || cfg.UseAccelerate {
		return badConfig("the domain template and UseAccelerate are for the cos flavour; the s3 flavour takes an endpoint URL")
	}
	ep := cfg.Endpoint
	if ep == "" {
		ep = "https://s3." + c.region + ".amazonaws.com"
	}
	u, err := parseEndpoint(ep)
	if err != nil {
		return err
	}
	c.scheme = u.Scheme
	// An IP address or localhost cannot take a bucket label in front of it:
	// such endpoints are addressed path style whatever PathStyle says.
	if cfg.PathStyle || isIPOrLocal(u.Hostname()) {
		c.host = u.Host
		c.pathPrefix = "/" + cfg.Bucket
	} else {
		c.host = cfg.Bucket + "." + u.Host
	}
	return nil
}

func parseEndpoint(ep string) (*url.URL, error) {
	shown := redactEndpoint(ep)
	if !strings.Contains(ep, "://") {
		return nil, badConfig("endpoint %q must start with http:// or https://", shown)
	}
	u, err := url.Parse(ep)
	if err != nil {
		// url's message quotes the whole URL: keep it out when it may
		// carry a password.
		if shown != ep {
			return nil, badConfig("endpoint %q is not a URL", shown)
		}
		return nil, badConfig("endpoint %q is not a URL: %v", shown, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, badConfig("endpoint %q must start with http:// or https://", shown)
	}
	if u.User != nil {
		return nil, badConfig("endpoint %q must not carry user information", shown)
	}
	if u.Host == "" || !hostRE.MatchString(u.Host) && !strings.HasPrefix(u.Host, "[") {
		return nil, badConfig("endpoint %q has no valid host", shown)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, badConfig("endpoint %q must be scheme://host[:port] with no path, query or fragment", shown)
	}
	return u, nil
}

// redactEndpoint hides user information (a password) in an endpoint.
func redactEndpoint(ep string) string {
	i := strings.LastIndex(ep, "@")
	if i < 0 {
		return ep
	}
	j := strings.Index(ep, "://")
	if j < 0 || j > i {
		return "***@" + ep[i+1:]
	}
	return ep[:j+3] + "***@" + ep[i+1:]
}

func isIPOrLocal(h string) bool {
	return h == "localhost" || net.ParseIP(h) != nil
}
