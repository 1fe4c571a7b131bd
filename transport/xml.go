package transport

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Documents the bucket answers with. Field names match the XML element
// names; namespaces are ignored.

type xmlObject struct {
	Key          string
	LastModified string
	ETag         string
	Size         int64
	StorageClass string
}

type xmlPrefix struct {
	Prefix string
}

type initiateResult struct {
	UploadID string `xml:"UploadId"`
}

// copyResult is CopyObjectResult and CopyPartResult.
type copyResult struct {
	ETag         string
	LastModified string
}

type completeResult struct {
	ETag string
}

type xmlPart struct {
	PartNumber   int
	ETag         string
	Size         int64
	LastModified string
}

type listPartsResult struct {
	IsTruncated          bool
	NextPartNumberMarker int
	Parts                []xmlPart `xml:"Part"`
}

type xmlUpload struct {
	Key       string
	UploadID  string `xml:"UploadId"`
	Initiated string
}

type listUploadsResult struct {
	IsTruncated        bool
	NextKeyMarker      string
	NextUploadIDMarker string `xml:"NextUploadIdMarker"`
	EncodingType       string
	Uploads            []xmlUpload `xml:"Upload"`
}

type deleteResult struct {
	Errors []struct {
		Key, Code, Message string
	} `xml:"Error"`
}

// Documents the client sends.

type deleteRequest struct {
	XMLName xml.Name        `xml:"Delete"`
	Quiet   bool            `xml:"Quiet"`
	Objects []deleteRequObj `xml:"Object"`
}

type deleteRequObj struct {
	Key string `xml:"Key"`
}

type completeRequest struct {
	XMLName xml.Name       `xml:"CompleteMultipartUpload"`
	Parts   []completePart `xml:"Part"`
}

type completePart struct {
	PartNumber int    `xml:"PartNumber"`
	ETag       string `xml:"ETag"`
}

type createBucketConfig struct {
	XMLName            xml.Name `xml:"CreateBucketConfiguration"`
	LocationConstraint string   `xml:"LocationConstraint"`
}

// decodeXML unmarshals a 200 answer's body; a body that does not parse is
// the server's fault.
func decodeXML(r *request, resp *response, v any) error {
	if err := xml.Unmarshal(resp.body, v); err != nil {
		return unreadable(r, resp, err)
	}
	return nil
}

// unreadable is a 2xx answer whose body could not be decoded.
func unreadable(r *request, resp *response, err error) *Error {
	return &Error{Op: r.op.String(), Key: r.key, StatusCode: resp.StatusCode,
		Message: "unreadable answer: " + err.Error(), RequestID: requestID(resp.Header), Kind: ErrServer}
}

// urlDecoder undoes encoding-type=url when the answer says it applied it
// (some servers ignore the request and send keys as they are).
type urlDecoder struct{ on bool }

func (d urlDecoder) decode(s string) (string, error) {
	if !d.on {
		return s, nil
	}
	return url.QueryUnescape(s)
}

func parseTime(s string) time.Time {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t
	}
	if t, err := http.ParseTime(s); err == nil {
		return t
	}
	return time.Time{}
}

// unquote strips an ETag's quotes.
func unquote(etag string) string {
	etag = strings.TrimSpace(etag)
	etag = strings.TrimPrefix(etag, "W/")
	return strings.Trim(etag, `"`)
}

// quote puts an ETag in quotes for If-Match and friends.
func quote(etag string) string {
	if etag == "*" || strings.HasPrefix(etag, `"`) || strings.HasPrefix(etag, `W/"`) {
		return etag
	}
	return `"` + etag + `"`
}

func md5Base64(b []byte) string {
	sum := md5.Sum(b)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// multipartETag is the ETag S3 and COS give an object completed from parts
// with these ETags, or "" when a part's ETag is not a hex MD5.
func multipartETag(parts []Part) string {
	h := md5.New()
	for _, p := range parts {
		b, err := hex.DecodeString(unquote(p.ETag))
		if err != nil || len(b) != md5.Size {
			return ""
		}
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)) + "-" + strconv.Itoa(len(parts))
}
