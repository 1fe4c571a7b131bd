package transport

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"
)

// listResult is a ListObjects (V1) or ListObjectsV2 answer.
type listResult struct {
	IsTruncated           bool
	NextMarker            string // V1
	NextContinuationToken string // V2
	EncodingType          string
	Contents              []xmlObject
	CommonPrefixes        []xmlPrefix
}

// decodeList reads a listing answer token by token. It takes what
// xml.Unmarshal would into listResult, several times faster: a page of a
// thousand keys is decoded for every thousand entries a directory holds, on
// the path of every listing. When early is not nil, it gets a V2 answer's
// NextContinuationToken as soon as it is read (servers send it before the
// keys), so that the next page can be asked for while this one is decoded.
func decodeList(body []byte, early func(token string)) (*listResult, error) {
	d := xml.NewDecoder(bytes.NewReader(body))
	res := &listResult{}
	var path [4]string // element names from the root down
	depth := 0
	var text []byte
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth < len(path) {
				path[depth] = t.Name.Local
			}
			depth++
			text = text[:0]
			if depth == 2 {
				switch t.Name.Local {
				case "Contents":
					res.Contents = append(res.Contents, xmlObject{})
				case "CommonPrefixes":
					res.CommonPrefixes = append(res.CommonPrefixes, xmlPrefix{})
				}
			}
		case xml.CharData:
			text = append(text, t...)
		case xml.EndElement:
			if depth == 0 {
				return nil, errors.New("unexpected end element </" + t.Name.Local + ">")
			}
			depth--
			if depth >= len(path) || path[depth] != t.Name.Local {
				if depth < len(path) {
					return nil, errors.New("element <" + path[depth] + "> closed by </" + t.Name.Local + ">")
				}
				continue
			}
			if err := res.set(path[:depth+1], text); err != nil {
				return nil, err
			}
			if early != nil && depth == 1 && t.Name.Local == "NextContinuationToken" && res.NextContinuationToken != "" {
				early(res.NextContinuationToken)
				early = nil
			}
			text = text[:0]
		}
	}
	if depth != 0 {
		return nil, io.ErrUnexpectedEOF
	}
	return res, nil
}

// set stores the text of the element at path (root first).
func (res *listResult) set(path []string, text []byte) error {
	switch len(path) {
	case 2:
		switch path[1] {
		case "IsTruncated":
			v, err := parseBool(text)
			if err != nil {
				return err
			}
			res.IsTruncated = v
		case "NextMarker":
			res.NextMarker = string(text)
		case "NextContinuationToken":
			res.NextContinuationToken = string(text)
		case "EncodingType":
			res.EncodingType = string(text)
		}
	case 3:
		switch path[1] {
		case "Contents":
			o := &res.Contents[len(res.Contents)-1]
			switch path[2] {
			case "Key":
				o.Key = string(text)
			case "LastModified":
				o.LastModified = string(text)
			case "ETag":
				o.ETag = string(text)
			case "Size":
				v, err := parseInt(text)
				if err != nil {
					return err
				}
				o.Size = v
			case "StorageClass":
				o.StorageClass = string(text)
			}
		case "CommonPrefixes":
			if path[2] == "Prefix" {
				res.CommonPrefixes[len(res.CommonPrefixes)-1].Prefix = string(text)
			}
		}
	}
	return nil
}

// parseBool and parseInt read element text as xml.Unmarshal does: spaces
// around are ignored, and no text at all is the zero value.
func parseBool(text []byte) (bool, error) {
	s := strings.TrimSpace(string(text))
	if s == "" {
		return false, nil
	}
	return strconv.ParseBool(s)
}

func parseInt(text []byte) (int64, error) {
	s := strings.TrimSpace(string(text))
	if s == "" {
		return 0, nil
	}
	return strconv.ParseInt(s, 10, 64)
}
