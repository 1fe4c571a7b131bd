package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultCAMEndpoint is where a Tencent Cloud CVM instance finds the
// temporary keys of its CAM role; the role name is appended.
const DefaultCAMEndpoint = "http://metadata.tencentyun.com/latest/meta-data/cam/security-credentials/"

// CAMRole fetches the temporary keys of a CVM instance's CAM role from the
// metadata service: GET Endpoint+Role, answered with
// {"TmpSecretId","TmpSecretKey","Token","ExpiredTime","Expiration","Code"};
// a Code other than "Success" is an error. No proxy is used.
type CAMRole struct {
	Role      string
	Endpoint  string           // "" means DefaultCAMEndpoint
	Client    *http.Client     // nil means one without a proxy
	Timeout   time.Duration    // 0 means DefaultHTTPTimeout
	BodyLimit int64            // 0 means DefaultBodyLimit
	Now       func() time.Time // nil means time.Now
}

// Retrieve implements Provider.
func (r *CAMRole) Retrieve(ctx context.Context) (Credentials, error) {
	name := "cam-role " + r.Role
	if strings.TrimSpace(r.Role) == "" {
		return Credentials{}, errors.New("cam-role: empty role name")
	}
	ep := r.Endpoint
	if ep == "" {
		ep = DefaultCAMEndpoint
	}
	u := strings.TrimRight(ep, "/") + "/" + url.PathEscape(r.Role)
	body, err := httpGet(ctx, r.Client, u, nil, r.Timeout, r.BodyLimit, false)
	if err != nil {
		return Credentials{}, fmt.Errorf("%s: %s: %w", name, redactURL(u), err)
	}
	c, err := ParseCredentialsJSON(body, nowOr(r.Now)())
	if err != nil {
		return Credentials{}, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}
