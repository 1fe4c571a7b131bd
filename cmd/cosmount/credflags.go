package main

import (
	"flag"
	"os"

	"cosmount/auth"
)

// credFlags are the flags that say where credentials come from. They name
// files, commands and URLs, never a secret.
type credFlags struct {
	passwdFile string
}

func addCredentialFlags(fl *flag.FlagSet) *credFlags {
	cf := &credFlags{}
	fl.StringVar(&cf.passwdFile, "passwd-file", "", "cosfs-style passwd file (bucket:SecretId:SecretKey), mode 0600")
	return cf
}

// sourceConfig turns the flags into auth's configuration.
func (cf *credFlags) sourceConfig(bucket string) auth.SourceConfig {
	return auth.SourceConfig{Bucket: bucket, PasswdFile: cf.passwdFile, Env: os.Getenv}
}
