module cosmount

go 1.26.8

require (
	github.com/aws/smithy-go/aws-http-auth v1.2.2
	github.com/hanwen/go-fuse/v2 v2.12.1
	github.com/hashicorp/golang-lru/v2 v2.0.7
	golang.org/x/sync v0.25.0
	golang.org/x/sys v0.28.0
)
