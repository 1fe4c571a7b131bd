package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/textproto"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync/atomic"

	"cosmount/auth"
)

// credFlags are the flags that say where credentials come from. They name
// files, commands and URLs, never a secret: ps shows every flag.
type credFlags struct {
	passwdFile        string
	credentialProcess string
	stsURL            string
	stsHeaders        headerFlag
	camRole           string
	camEndpoint       string
	stsFile           string
	secretIDFile      string
	secretKeyFile     string
	tokenFile         string

	// logger is told of credential refreshes; nothing is logged until
	// setLogger.
	logger atomic.Pointer[slog.Logger]
}

func addCredentialFlags(fl *flag.FlagSet) *credFlags {
	cf := &credFlags{}
	fl.StringVar(&cf.credentialProcess, "credential-process", "",
		"credentials: run `CMD ARGS` (no shell) and read TmpSecretId/TmpSecretKey/SecurityToken/ExpiredTime JSON from its stdout; run again before the keys expire")
	fl.StringVar(&cf.stsURL, "sts-url", "",
		"credentials: GET temporary keys as JSON from this `URL` (your own STS endpoint); fetched again before they expire. "+
			"A URL with a query or user info (which may hold secrets: ps shows flags) must be given as @/path/file, a file holding the URL")
	fl.Var(&cf.stsHeaders, "sts-header",
		"extra header for --sts-url: `Name=value`, or Name=@/path/file to read the value from a file on every request (use a file for tokens: ps shows flags); repeatable")
	fl.StringVar(&cf.camRole, "cam-role", "",
		"credentials: the CVM instance `ROLE`, from the metadata service")
	fl.StringVar(&cf.camEndpoint, "cam-endpoint", "",
		"metadata `URL` for --cam-role (default "+auth.DefaultCAMEndpoint+"ROLE)")
	fl.StringVar(&cf.stsFile, "sts-file", "",
		"credentials: cosfs' STS `file` (COSAccessKeyId=, COSSecretKey=, COSAccessToken=, COSAccessTokenExpire=), re-read before the token expires")
	fl.StringVar(&cf.secretIDFile, "secret-id-file", "",
		"credentials: `file` holding the SecretId (with --secret-key-file)")
	fl.StringVar(&cf.secretKeyFile, "secret-key-file", "",
		"credentials: `file` holding the SecretKey (with --secret-id-file)")
	fl.StringVar(&cf.tokenFile, "token-file", "",
		"`file` holding the session token that goes with --secret-id-file and --secret-key-file; the three files are read again every 2 minutes and when the server refuses the keys")
	fl.StringVar(&cf.passwdFile, "passwd-file", "",
		"credentials: cosfs-style passwd `file` (bucket:SecretId:SecretKey or SecretId:SecretKey lines), mode 0600; "+
			"default ~/.passwd-cosmount, then /etc/passwd-cosmount, after the environment")
	return cf
}

// check refuses what the flags cannot hold: an --sts-url whose query or
// user info could be a secret, or a --cam-endpoint with user info, since ps
// shows the command line (and the background process's). Errors never
// quote the URL.
func (cf *credFlags) check() error {
	if cf.camEndpoint != "" {
		if _, err := checkURLFlag("--cam-endpoint", cf.camEndpoint); err != nil {
			return err
		}
	}
	if p, ok := strings.CutPrefix(cf.stsURL, "@"); ok {
		if strings.TrimSpace(p) == "" {
			return errors.New("--sts-url: no file after @")
		}
		return nil
	}
	if cf.stsURL == "" {
		return nil
	}
	u, err := url.Parse(cf.stsURL)
	if err != nil {
		return errors.New("--sts-url is not a URL")
	}
	if u.User != nil || u.RawQuery != "" || u.ForceQuery {
		return errors.New("--sts-url has a query or user info, which ps would show: " +
			"put the URL in a file (mode 0600) and give --sts-url @/path/file")
	}
	return nil
}

// checkURLFlag parses the http:// or https:// URL given to flag and
// refuses one with user info (NAME:SECRET@host), which ps would show. Its
// errors quote at most the scheme, host and path.
func checkURLFlag(flag, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url's errors quote the whole URL.
		return nil, fmt.Errorf("%s is not a URL", flag)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%s has user info (NAME:SECRET@), which ps would show: "+
			"give the URL without it; keys come from the credential flags, the environment or a passwd file", flag)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		if u.Opaque != "" {
			// No "//": what came before the ":" may be a name, not a scheme
			// ("AKID:SECRET@host").
			return nil, fmt.Errorf("%s is not an http:// or https:// URL", flag)
		}
		shown := (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}).String()
		return nil, fmt.Errorf("%s %s: want an http:// or https:// URL with a host", flag, shown)
	}
	return u, nil
}

// setLogger sets where credential refreshes are logged. Call it before the
// provider is made (it may be called later: refreshes that follow use it).
func (cf *credFlags) setLogger(l *slog.Logger) { cf.logger.Store(l) }

// sourceConfig turns the flags into auth's configuration.
func (cf *credFlags) sourceConfig(bucket string) auth.SourceConfig {
	headers, files := cf.stsHeaders.split()
	stsURL, stsURLFile := cf.stsURL, ""
	if p, ok := strings.CutPrefix(stsURL, "@"); ok {
		stsURL, stsURLFile = "", p
	}
	return auth.SourceConfig{
		Bucket:            bucket,
		CredentialProcess: cf.credentialProcess,
		STSURL:            stsURL,
		STSURLFile:        stsURLFile,
		STSHeaders:        headers,
		STSHeaderFiles:    files,
		CAMRole:           cf.camRole,
		CAMEndpoint:       cf.camEndpoint,
		STSFile:           cf.stsFile,
		SecretIDFile:      cf.secretIDFile,
		SecretKeyFile:     cf.secretKeyFile,
		TokenFile:         cf.tokenFile,
		PasswdFile:        cf.passwdFile,
		Env:               os.Getenv,
		Refresh:           auth.RefresherOptions{Logf: cf.logRefresh},
	}
}

// logRefresh logs one message of the Refresher, which never holds a secret:
// failures as warnings, the rest as information.
func (cf *credFlags) logRefresh(format string, args ...any) {
	l := cf.logger.Load()
	if l == nil {
		return // no logger yet: stderr must stay for the one-line failure reason
	}
	msg := fmt.Sprintf(format, args...)
	lvl := slog.LevelInfo
	if strings.Contains(msg, "failed") || strings.Contains(msg, "refused") {
		lvl = slog.LevelWarn
	}
	l.Log(context.Background(), lvl, msg)
}

// headerFlag collects --sts-header Name=value and Name=@/path/file.
type headerFlag struct {
	names  []string          // in the order given
	values map[string]string // canonical name -> value, or "@path"
}

// sensitiveHeader reports whether a header's value is a secret, which must
// come from a file rather than the command line.
func sensitiveHeader(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "authorization", "proxy-authorization", "cookie":
		return true
	}
	for _, w := range []string{"token", "secret", "password", "passwd", "key", "auth", "credential", "session"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// String never shows a value: flag errors and usage print it.
func (h *headerFlag) String() string {
	if h == nil || len(h.names) == 0 {
		return ""
	}
	return strings.Join(h.names, ", ")
}

// Set adds one header. Errors never quote the value.
func (h *headerFlag) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return errors.New("want Name=value or Name=@/path/file")
	}
	if !validHeaderName(name) {
		return errors.New("the header name must be letters, digits and !#$%&'*+-.^_`|~")
	}
	canon := textproto.CanonicalMIMEHeaderKey(name)
	if _, dup := h.values[canon]; dup {
		return fmt.Errorf("header %s given twice", canon)
	}
	if strings.HasPrefix(value, "@") {
		if strings.TrimSpace(value[1:]) == "" {
			return fmt.Errorf("header %s: no file after @", canon)
		}
	} else {
		if strings.ContainsAny(value, "\r\n\x00") {
			return fmt.Errorf("header %s: the value holds a line break or NUL", canon)
		}
		if sensitiveHeader(canon) {
			return fmt.Errorf("header %s holds a secret, which ps would show: put the value in a file (mode 0600) and give %s=@/path/file", canon, canon)
		}
	}
	if h.values == nil {
		h.values = map[string]string{}
	}
	h.names = append(h.names, canon)
	h.values[canon] = value
	return nil
}

// split returns the literal headers and the headers read from files, nil
// when there are none.
func (h *headerFlag) split() (headers, files map[string]string) {
	names := append([]string(nil), h.names...)
	sort.Strings(names)
	for _, n := range names {
		v := h.values[n]
		if p, ok := strings.CutPrefix(v, "@"); ok {
			if files == nil {
				files = map[string]string{}
			}
			files[n] = p
			continue
		}
		if headers == nil {
			headers = map[string]string{}
		}
		headers[n] = v
	}
	return headers, files
}

func validHeaderName(s string) bool {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("!#$%&'*+-.^_`|~", r):
		default:
			return false
		}
	}
	return s != ""
}
