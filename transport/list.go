package transport

import (
	"context"
	"net/http"
	"strconv"
)

// List returns one page of keys under in.Prefix, grouped by in.Delimiter.
// COS lists with ListObjects V1 (marker), S3 with ListObjectsV2
// (continuation-token); both ask for encoding-type=url and decode what the
// answer says it encoded. NextToken continues a truncated listing.
func (c *Client) List(ctx context.Context, in *ListInput) (*ListOutput, error) {
	r := &request{op: opList, method: http.MethodGet, bucket: true}
	if in.MaxKeys < 0 {
		return nil, invalid(r, "negative MaxKeys")
	}
	var q query
	if c.cfg.Flavor == FlavorS3 {
		q.add("list-type", "2")
		q.addIf("continuation-token", in.Token)
		q.addIf("delimiter", in.Delimiter)
		q.add("encoding-type", "url")
		if in.MaxKeys > 0 {
			q.add("max-keys", strconv.Itoa(in.MaxKeys))
		}
		q.addIf("prefix", in.Prefix)
	} else {
		q.addIf("delimiter", in.Delimiter)
		q.add("encoding-type", "url")
		q.addIf("marker", in.Token)
		if in.MaxKeys > 0 {
			q.add("max-keys", strconv.Itoa(in.MaxKeys))
		}
		q.addIf("prefix", in.Prefix)
	}
	r.query = q.String()
	resp, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	var early func(string)
	if c.cfg.Flavor == FlavorS3 {
		early = in.OnNextToken
	}
	res, err := decodeList(resp.body, early)
	if err != nil {
		return nil, unreadable(r, resp, err)
	}
	if c.cfg.Flavor == FlavorS3 {
		out, err := listOutput(r, resp, res.EncodingType, res.Contents, res.CommonPrefixes)
		if err != nil {
			return nil, err
		}
		if res.IsTruncated {
			out.NextToken = res.NextContinuationToken
			if out.NextToken == "" {
				return nil, badAnswer(r, resp, "truncated listing without NextContinuationToken")
			}
		}
		return out, nil
	}
	out, err := listOutput(r, resp, res.EncodingType, res.Contents, res.CommonPrefixes)
	if err != nil {
		return nil, err
	}
	if res.IsTruncated {
		// V1 may leave NextMarker out: then the page's last key or prefix
		// (whichever sorts last) is the marker.
		next, err := urlDecoder{res.EncodingType == "url"}.decode(res.NextMarker)
		if err != nil {
			return nil, badAnswer(r, resp, "undecodable NextMarker")
		}
		if next == "" {
			if n := len(out.Objects); n > 0 {
				next = out.Objects[n-1].Key
			}
			if n := len(out.CommonPrefixes); n > 0 && out.CommonPrefixes[n-1] > next {
				next = out.CommonPrefixes[n-1]
			}
		}
		if next == "" || next == in.Token {
			return nil, badAnswer(r, resp, "truncated listing without a way forward")
		}
		out.NextToken = next
	}
	return out, nil
}

func listOutput(r *request, resp *response, encoding string, contents []xmlObject, prefixes []xmlPrefix) (*ListOutput, error) {
	dec := urlDecoder{encoding == "url"}
	out := &ListOutput{Objects: make([]ObjectInfo, 0, len(contents))}
	for _, o := range contents {
		key, err := dec.decode(o.Key)
		if err != nil {
			return nil, badAnswer(r, resp, "undecodable key "+strconv.Quote(o.Key))
		}
		out.Objects = append(out.Objects, ObjectInfo{
			Key:          key,
			Size:         o.Size,
			ETag:         unquote(o.ETag),
			LastModified: parseTime(o.LastModified),
			StorageClass: o.StorageClass,
		})
	}
	for _, p := range prefixes {
		prefix, err := dec.decode(p.Prefix)
		if err != nil {
			return nil, badAnswer(r, resp, "undecodable prefix "+strconv.Quote(p.Prefix))
		}
		out.CommonPrefixes = append(out.CommonPrefixes, prefix)
	}
	return out, nil
}

// badAnswer is a 200 answer that makes no sense.
func badAnswer(r *request, resp *response, msg string) *Error {
	return &Error{Op: r.op.String(), Key: r.key, StatusCode: resp.StatusCode, Message: msg,
		RequestID: requestID(resp.Header), Kind: ErrServer}
}
