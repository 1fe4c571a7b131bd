package auth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// DefaultSystemPasswdFile is the last place credentials are looked for.
const DefaultSystemPasswdFile = "/etc/passwd-cosmount"

// SourceConfig says where credentials come from: the command's flags, the
// environment and the home directory. Flags name files or commands, never a
// secret itself, so ps shows none.
type SourceConfig struct {
	Bucket string // picks the bucket's line in a passwd file

	CredentialProcess string // --credential-process "CMD ARGS"
	ProcessTimeout    time.Duration

	STSURL         string            // --sts-url URL
	STSURLFile     string            // --sts-url @/path/file: the URL is read from the file
	STSHeaders     map[string]string // --sts-header Name=value
	STSHeaderFiles map[string]string // --sts-header Name=@/path/file: header name -> file
	HTTPTimeout    time.Duration     // STS URL and CAM role; 0 means DefaultHTTPTimeout

	CAMRole     string // --cam-role
	CAMEndpoint string // "" means DefaultCAMEndpoint

	STSFile string // cosfs' STS file (--sts-file)

	SecretIDFile, SecretKeyFile, TokenFile string // files holding one value each

	PasswdFile string // --passwd-file

	Env              func(string) string // nil means os.Getenv
	HomeDir          string              // "" means os.UserHomeDir()
	SystemPasswdFile string              // "" means DefaultSystemPasswdFile
	Now              func() time.Time    // nil means time.Now; also the Refresher's clock unless Refresh.Now is set
	Refresh          RefresherOptions
}

// NewProvider picks the first configured source of credentials, wraps it in
// a Refresher, and fetches the keys once, so that a bad source fails the
// mount with a one-line reason. The order is:
//
//  1. explicit flags, in this order: --credential-process, --sts-url,
//     --cam-role, --sts-file, the SecretId/SecretKey(/token) files,
//     --passwd-file;
//  2. the environment: TENCENTCLOUD_SECRET_ID, TENCENTCLOUD_SECRET_KEY and
//     TENCENTCLOUD_SESSION_TOKEN; then cosfs' COSACCESSKEYID and
//     COSSECRETACCESSKEY; then AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
//     AWS_SESSION_TOKEN;
//  3. a passwd file at ~/.passwd-cosmount, then /etc/passwd-cosmount.
//
// The first one configured wins: the others are not looked at, even when
// it fails. The returned Provider is a *Refresher (an Invalidator too); the
// description names the source without any secret, for logs.
func NewProvider(ctx context.Context, cfg SourceConfig) (Provider, string, error) {
	src, desc, err := pickSource(cfg)
	if err != nil {
		return nil, "", err
	}
	opts := cfg.Refresh
	if opts.Now == nil {
		opts.Now = cfg.Now
	}
	r := NewRefresher(src, opts)
	if _, err := r.Retrieve(ctx); err != nil {
		return nil, desc, fmt.Errorf("credentials: %w", err)
	}
	return r, desc, nil
}

// pickSource returns the first configured source and its description.
func pickSource(cfg SourceConfig) (Provider, string, error) {
	now := nowOr(cfg.Now)
	switch {
	case cfg.CredentialProcess != "":
		argv, err := SplitCommand(cfg.CredentialProcess)
		if err != nil {
			return nil, "", fmt.Errorf("--credential-process: %w", err)
		}
		return &Process{Command: cfg.CredentialProcess, Timeout: cfg.ProcessTimeout, Now: now},
			"credential process " + argv[0], nil
	case cfg.STSURL != "":
		return &STSURL{URL: cfg.STSURL, Headers: cfg.STSHeaders, HeaderFiles: cfg.STSHeaderFiles,
			Timeout: cfg.HTTPTimeout, Now: now}, "STS URL " + redactURL(cfg.STSURL), nil
	case cfg.STSURLFile != "":
		return &STSURL{URLFile: cfg.STSURLFile, Headers: cfg.STSHeaders, HeaderFiles: cfg.STSHeaderFiles,
			Timeout: cfg.HTTPTimeout, Now: now}, "STS URL from " + cfg.STSURLFile, nil
	case cfg.CAMRole != "":
		return &CAMRole{Role: cfg.CAMRole, Endpoint: cfg.CAMEndpoint, Timeout: cfg.HTTPTimeout, Now: now},
			"CAM role " + cfg.CAMRole, nil
	case cfg.STSFile != "":
		return &STSFile{Path: cfg.STSFile, Now: now}, "STS file " + cfg.STSFile, nil
	case cfg.SecretIDFile != "" || cfg.SecretKeyFile != "" || cfg.TokenFile != "":
		if cfg.SecretIDFile == "" || cfg.SecretKeyFile == "" {
			return nil, "", errors.New("credentials: the SecretId file and the SecretKey file must be given together")
		}
		return &KeyFiles{SecretIDFile: cfg.SecretIDFile, SecretKeyFile: cfg.SecretKeyFile, TokenFile: cfg.TokenFile},
			"key files " + cfg.SecretIDFile + ", " + cfg.SecretKeyFile, nil
	case cfg.PasswdFile != "":
		return &PasswdFile{Path: cfg.PasswdFile, Bucket: cfg.Bucket, Now: now}, "passwd file " + cfg.PasswdFile, nil
	}
	c, name, ok, err := fromEnv(cfg.Env)
	if ok {
		if err != nil {
			return nil, "", fmt.Errorf("credentials: %w", err)
		}
		return NewStatic(c), "environment (" + name + ")", nil
	}
	var candidates []string
	home := cfg.HomeDir
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	if home != "" {
		candidates = append(candidates, filepath.Join(home, ".passwd-cosmount"))
	}
	sys := cfg.SystemPasswdFile
	if sys == "" {
		sys = DefaultSystemPasswdFile
	}
	candidates = append(candidates, sys)
	for _, p := range candidates {
		if _, err := os.Lstat(p); err == nil {
			return &PasswdFile{Path: p, Bucket: cfg.Bucket, Now: now}, "passwd file " + p, nil
		}
	}
	return nil, "", errors.New("no credentials: give --credential-process, --sts-url, --cam-role, --sts-file, key files or --passwd-file, " +
		"or set TENCENTCLOUD_SECRET_ID/TENCENTCLOUD_SECRET_KEY (or COSACCESSKEYID/COSSECRETACCESSKEY, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), " +
		"or write SecretId:SecretKey into ~/.passwd-cosmount or /etc/passwd-cosmount (mode 600)")
}
