package transport

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"net/http"
	"slices"
	"strconv"
)

// The raw multipart calls. The sub-resource comes first in every query
// (?uploads, ?uploadId=…&partNumber=…): COS routes on the first parameter.

// InitiateMultipart starts a multipart upload and returns its id.
func (c *Client) InitiateMultipart(ctx context.Context, in *InitiateInput) (string, error) {
	r := &request{op: opInitiate, method: http.MethodPost, key: in.Key, query: "uploads", header: http.Header{}}
	if err := checkKey(r, in.Key); err != nil {
		return "", err
	}
	if in.ContentType != "" {
		r.header.Set("Content-Type", in.ContentType)
	}
	if err := c.setMeta(r, in.Metadata); err != nil {
		return "", err
	}
	resp, err := c.do(ctx, r)
	if err != nil {
		return "", err
	}
	var res initiateResult
	if err := decodeXML(r, resp, &res); err != nil {
		return "", err
	}
	if res.UploadID == "" {
		return "", badAnswer(r, resp, "no UploadId")
	}
	return res.UploadID, nil
}

func partQuery(uploadID string, partNumber int) string {
	var q query
	q.add("uploadId", uploadID)
	q.add("partNumber", strconv.Itoa(partNumber))
	return q.String()
}

func checkPartArgs(r *request, key, uploadID string, partNumber int) error {
	if err := checkKey(r, key); err != nil {
		return err
	}
	if uploadID == "" {
		return invalid(r, "empty upload id")
	}
	if partNumber < 1 || partNumber > 10000 {
		return invalid(r, "part number "+strconv.Itoa(partNumber)+" is not in 1..10000")
	}
	return nil
}

// UploadPart uploads one part from the body's current offset, Size bytes,
// rewinding it for a retry; COS's CRC64 of the part is checked.
func (c *Client) UploadPart(ctx context.Context, in *UploadPartInput) (*Part, error) {
	r := &request{op: opUploadPart, method: http.MethodPut, key: in.Key, header: http.Header{},
		query: partQuery(in.UploadID, in.PartNumber), crc: c.cfg.Flavor == FlavorCOS}
	if err := checkPartArgs(r, in.Key, in.UploadID, in.PartNumber); err != nil {
		return nil, err
	}
	if err := r.setBody(in.Body, in.Size); err != nil {
		return nil, invalid(r, "body: "+err.Error())
	}
	if c.cfg.CheckContentMD5 {
		sum, err := bodyMD5(r)
		if err != nil {
			return nil, c.opError(r, err)
		}
		r.header.Set("Content-MD5", base64.StdEncoding.EncodeToString(sum))
	}
	resp, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	etag := unquote(resp.Header.Get("ETag"))
	if etag == "" {
		return nil, badAnswer(r, resp, "no ETag for the part")
	}
	return &Part{PartNumber: in.PartNumber, ETag: etag, Size: r.size}, nil
}

// UploadPartCopy copies a range of an object of this bucket into a part.
func (c *Client) UploadPartCopy(ctx context.Context, in *UploadPartCopyInput) (*Part, error) {
	r := &request{op: opUploadPartCopy, method: http.MethodPut, key: in.Key, header: http.Header{},
		query: partQuery(in.UploadID, in.PartNumber), errorIn200: true}
	if err := checkPartArgs(r, in.Key, in.UploadID, in.PartNumber); err != nil {
		return nil, err
	}
	if err := checkKey(r, in.SrcKey); err != nil {
		return nil, err
	}
	if in.Offset < 0 || in.Length == 0 {
		return nil, invalid(r, "empty or negative source range")
	}
	length := in.Length
	if in.Offset > 0 && length < 0 {
		// Both ends are required: find the source's size.
		info, err := c.Head(ctx, &HeadInput{Key: in.SrcKey})
		if err != nil {
			return nil, err
		}
		if info.Size <= in.Offset {
			return nil, invalid(r, "source range starts past the source's end")
		}
		length = info.Size - in.Offset
	}
	r.header.Set(c.hdr+"copy-source", c.copySource(in.SrcKey))
	if length >= 0 {
		r.header.Set(c.hdr+"copy-source-range", rangeHeader(in.Offset, length))
	}
	if in.SrcIfMatch != "" {
		r.header.Set(c.hdr+"copy-source-if-match", quote(in.SrcIfMatch))
	}
	resp, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	var res copyResult
	if err := decodeXML(r, resp, &res); err != nil {
		return nil, err
	}
	if res.ETag == "" {
		return nil, badAnswer(r, resp, "no ETag for the part")
	}
	return &Part{PartNumber: in.PartNumber, ETag: unquote(res.ETag), Size: max(length, 0),
		LastModified: parseTime(res.LastModified)}, nil
}

// CompleteMultipart assembles the parts (sorted by number) into the
// object. A 200 answer carrying an <Error> is retried like a 5xx. When a
// retry finds the upload gone because an earlier attempt did complete it,
// the object's ETag is checked against the parts' and the call succeeds.
func (c *Client) CompleteMultipart(ctx context.Context, in *CompleteInput) (*PutOutput, error) {
	r := &request{op: opComplete, method: http.MethodPost, key: in.Key, errorIn200: true}
	if err := checkKey(r, in.Key); err != nil {
		return nil, err
	}
	if in.UploadID == "" || len(in.Parts) == 0 {
		return nil, invalid(r, "no upload id or no parts")
	}
	var q query
	q.add("uploadId", in.UploadID)
	r.query = q.String()
	parts := slices.Clone(in.Parts)
	slices.SortFunc(parts, func(a, b Part) int { return a.PartNumber - b.PartNumber })
	doc := completeRequest{Parts: make([]completePart, len(parts))}
	for i, p := range parts {
		if i > 0 && p.PartNumber == parts[i-1].PartNumber {
			return nil, invalid(r, "part "+strconv.Itoa(p.PartNumber)+" given twice")
		}
		doc.Parts[i] = completePart{PartNumber: p.PartNumber, ETag: quote(unquote(p.ETag))}
	}
	b, err := xml.Marshal(doc)
	if err != nil {
		return nil, err
	}
	r.setXML(b, false)
	resp, err := c.do(ctx, r)
	if errors.Is(err, ErrNotFound) {
		if want := multipartETag(parts); want != "" {
			if info, herr := c.Head(ctx, &HeadInput{Key: in.Key}); herr == nil && info.ETag == want {
				return &PutOutput{ETag: info.ETag}, nil
			}
		}
	}
	if err != nil {
		return nil, err
	}
	var res completeResult
	if err := decodeXML(r, resp, &res); err != nil {
		return nil, err
	}
	etag := unquote(res.ETag)
	if etag == "" {
		etag = unquote(resp.Header.Get("ETag"))
	}
	return &PutOutput{ETag: etag}, nil
}

// AbortMultipart abandons an upload and frees its parts; an upload that is
// already gone is not an error.
func (c *Client) AbortMultipart(ctx context.Context, key, uploadID string) error {
	r := &request{op: opAbort, method: http.MethodDelete, key: key}
	if err := checkKey(r, key); err != nil {
		return err
	}
	if uploadID == "" {
		return invalid(r, "empty upload id")
	}
	var q query
	q.add("uploadId", uploadID)
	r.query = q.String()
	_, err := c.do(ctx, r)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// ListParts returns every uploaded part of an upload, following pages.
func (c *Client) ListParts(ctx context.Context, key, uploadID string) ([]Part, error) {
	var parts []Part
	marker := 0
	for {
		r := &request{op: opListParts, method: http.MethodGet, key: key}
		if err := checkKey(r, key); err != nil {
			return nil, err
		}
		if uploadID == "" {
			return nil, invalid(r, "empty upload id")
		}
		var q query
		q.add("uploadId", uploadID)
		q.add("max-parts", "1000")
		if marker > 0 {
			q.add("part-number-marker", strconv.Itoa(marker))
		}
		r.query = q.String()
		resp, err := c.do(ctx, r)
		if err != nil {
			return nil, err
		}
		var res listPartsResult
		if err := decodeXML(r, resp, &res); err != nil {
			return nil, err
		}
		for _, p := range res.Parts {
			parts = append(parts, Part{PartNumber: p.PartNumber, ETag: unquote(p.ETag), Size: p.Size,
				LastModified: parseTime(p.LastModified)})
		}
		if !res.IsTruncated {
			return parts, nil
		}
		if res.NextPartNumberMarker <= marker {
			return nil, badAnswer(r, resp, "truncated part list without a way forward")
		}
		marker = res.NextPartNumberMarker
	}
}

// ListMultipartUploads returns every upload in progress under prefix,
// following pages.
func (c *Client) ListMultipartUploads(ctx context.Context, prefix string) ([]Upload, error) {
	var ups []Upload
	keyMarker, idMarker := "", ""
	for {
		r := &request{op: opListUploads, method: http.MethodGet, bucket: true}
		var q query
		q.flag("uploads")
		q.add("encoding-type", "url")
		q.addIf("key-marker", keyMarker)
		q.add("max-uploads", "1000")
		q.addIf("prefix", prefix)
		q.addIf("upload-id-marker", idMarker)
		r.query = q.String()
		resp, err := c.do(ctx, r)
		if err != nil {
			return nil, err
		}
		var res listUploadsResult
		if err := decodeXML(r, resp, &res); err != nil {
			return nil, err
		}
		dec := urlDecoder{res.EncodingType == "url"}
		for _, u := range res.Uploads {
			key, err := dec.decode(u.Key)
			if err != nil {
				return nil, badAnswer(r, resp, "undecodable key "+strconv.Quote(u.Key))
			}
			ups = append(ups, Upload{Key: key, UploadID: u.UploadID, Initiated: parseTime(u.Initiated)})
		}
		if !res.IsTruncated {
			return ups, nil
		}
		next, err := dec.decode(res.NextKeyMarker)
		if err != nil {
			return nil, badAnswer(r, resp, "undecodable NextKeyMarker")
		}
		if next == "" || next == keyMarker && res.NextUploadIDMarker == idMarker {
			return nil, badAnswer(r, resp, "truncated upload list without a way forward")
		}
		keyMarker, idMarker = next, res.NextUploadIDMarker
	}
}
