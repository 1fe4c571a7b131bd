// Package cosoracle checks cosmount's COS request signing (auth.SignCOS)
// against Tencent's reference Go SDK, github.com/tencentyun/cos-go-sdk-v5,
// on randomized requests. It is a module of its own, used only by its test,
// so that the SDK never becomes a dependency of cosmount itself.
//
// Run it with: cd internal/cosoracle && go test -race -count=1 ./...
package cosoracle
