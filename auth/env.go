package auth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// envSet is one family of environment variables that can hold keys.
type envSet struct{ id, key, token string }

// envSets are read in this order; the first whose SecretId variable is set
// wins.
var envSets = []envSet{
	{"TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY", "TENCENTCLOUD_SESSION_TOKEN"},
	{"COSACCESSKEYID", "COSSECRETACCESSKEY", ""},
	{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"},
}

// fromEnv returns the keys of the first family of variables that is set, and
// the name of its SecretId variable; ok is false when none is. Keys from the
// environment are permanent: nothing tells when a session token expires.
func fromEnv(getenv func(string) string) (c Credentials, name string, ok bool, err error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	for _, s := range envSets {
		id, key := getenv(s.id), getenv(s.key)
		if id == "" && key == "" {
			continue
		}
		if id == "" || key == "" {
			set, unset := s.id, s.key
			if id == "" {
				set, unset = s.key, s.id
			}
			return Credentials{}, s.id, true, fmt.Errorf("environment: %s is set but %s is not", set, unset)
		}
		c = Credentials{SecretID: id, SecretKey: key}
		if s.token != "" {
			c.SessionToken = getenv(s.token)
		}
		return c, s.id, true, nil
	}
	return Credentials{}, "", false, nil
}

// KeyFiles reads keys from files that each hold one value (surrounding white
// space is trimmed): the SecretId, the SecretKey and, optionally, a session
// token. The keys carry no expiry, but the files are read on every
// Retrieve: wrapped in a Refresher, they are read again when the server
// refuses the keys and, with a token file (which an agent rotates), every
// KeyFilesReread. File modes are not checked, since Kubernetes mounts
// secrets 0644 by default.
type KeyFiles struct {
	SecretIDFile, SecretKeyFile, TokenFile string
}

// KeyFilesReread is how often a Refresher reads key files with a token file
// again.
const KeyFilesReread = 2 * time.Minute

func (k *KeyFiles) rereadEvery() time.Duration {
	if k.TokenFile != "" {
		return KeyFilesReread
	}
	return 0
}

// Retrieve implements Provider.
func (k *KeyFiles) Retrieve(context.Context) (Credentials, error) {
	if k.SecretIDFile == "" || k.SecretKeyFile == "" {
		return Credentials{}, errors.New("the SecretId file and the SecretKey file must be given together")
	}
	var c Credentials
	var err error
	if c.SecretID, err = readPublicFile(k.SecretIDFile, "SecretId file"); err != nil {
		return Credentials{}, err
	}
	if c.SecretKey, err = readPublicFile(k.SecretKeyFile, "SecretKey file"); err != nil {
		return Credentials{}, err
	}
	if k.TokenFile != "" {
		if c.SessionToken, err = readPublicFile(k.TokenFile, "token file"); err != nil {
			return Credentials{}, err
		}
	}
	switch {
	case c.SecretID == "":
		return Credentials{}, fmt.Errorf("SecretId file %s is empty", k.SecretIDFile)
	case c.SecretKey == "":
		return Credentials{}, fmt.Errorf("SecretKey file %s is empty", k.SecretKeyFile)
	}
	return c, nil
}
