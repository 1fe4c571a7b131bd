module cosmount/internal/cosoracle

go 1.26.8

require (
	cosmount v0.0.0
	github.com/tencentyun/cos-go-sdk-v5 v0.7.75
)

require (
	github.com/aws/smithy-go/aws-http-auth v1.2.2 // indirect
	github.com/clbanning/mxj v1.8.4 // indirect
	github.com/google/go-querystring v1.0.0 // indirect
	github.com/mitchellh/mapstructure v1.4.3 // indirect
	github.com/mozillazg/go-httpheader v0.2.1 // indirect
)

replace cosmount => ../..
