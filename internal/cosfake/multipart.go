package cosfake

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The fake's multipart, listing and batch-delete calls; f.mu is held.

func (f *Fake) initiate(w http.ResponseWriter, r *http.Request, key string) {
	f.nextID++
	id := "cfup" + strconv.Itoa(f.nextID)
	f.uploads[id] = &upload{key: key, ctype: r.Header.Get("Content-Type"), meta: metaOf(r.Header),
		parts: map[int]*object{}, initiated: time.Now()}
	WriteXML(w, struct {
		XMLName  xml.Name `xml:"InitiateMultipartUploadResult"`
		Bucket   string
		Key      string
		UploadId string
	}{Bucket: Bucket, Key: key, UploadId: id})
}

func (f *Fake) multipart(w http.ResponseWriter, r *http.Request, key string, body []byte) {
	q := r.URL.Query()
	id := q.Get("uploadId")
	up := f.uploads[id]
	if up == nil || up.key != key {
		writeError(w, r, 404, "NoSuchUpload", "The specified upload does not exist.")
		return
	}
	switch r.Method {
	case "PUT":
		n, err := strconv.Atoi(q.Get("partNumber"))
		if err != nil || n < 1 || n > 10000 {
			writeError(w, r, 400, "InvalidArgument", "bad partNumber")
			return
		}
		if r.Header.Get("x-cos-copy-source") != "" {
			src, ok := f.copySource(w, r)
			if !ok {
				return
			}
			lo, hi, _, ok := ParseRange(strings.Replace(r.Header.Get("x-cos-copy-source-range"), "bytes=", "bytes=", 1), int64(len(src.data)))
			if !ok {
				writeError(w, r, 400, "InvalidArgument", "bad x-cos-copy-source-range")
				return
			}
			data := bytes.Clone(src.data[lo:hi])
			p := &object{data: data, etag: md5hex(data), mod: time.Now()}
			up.parts[n] = p
			WriteXML(w, struct {
				XMLName      xml.Name `xml:"CopyPartResult"`
				ETag         string
				LastModified string
			}{ETag: `"` + p.etag + `"`, LastModified: p.mod.UTC().Format(time.RFC3339)})
			return
		}
		if !f.checkBody(w, r, body) {
			return
		}
		up.parts[n] = &object{data: body, etag: md5hex(body), mod: time.Now()}
		w.Header().Set("ETag", `"`+md5hex(body)+`"`)
		w.Header().Set(crcHeader, CRC64(body))
	case "POST":
		f.complete(w, r, id, up, body)
	case "DELETE":
		delete(f.uploads, id)
		w.WriteHeader(204)
	case "GET":
		f.listParts(w, r, up)
	}
}

func (f *Fake) complete(w http.ResponseWriter, r *http.Request, id string, up *upload, body []byte) {
	var req completeRequest
	if err := xml.Unmarshal(body, &req); err != nil || len(req.Parts) == 0 {
		writeError(w, r, 400, "MalformedXML", "bad CompleteMultipartUpload")
		return
	}
	var data []byte
	h := md5.New()
	for i, p := range req.Parts {
		part := up.parts[p.PartNumber]
		if part == nil || strings.Trim(p.ETag, `"`) != part.etag {
			writeError(w, r, 400, "InvalidPart", "One or more of the specified parts could not be found.")
			return
		}
		if i > 0 && p.PartNumber <= req.Parts[i-1].PartNumber {
			writeError(w, r, 400, "InvalidPartOrder", "The list of parts was not in ascending order.")
			return
		}
		data = append(data, part.data...)
		b, _ := hex.DecodeString(part.etag)
		h.Write(b)
	}
	o := &object{data: data, etag: hex.EncodeToString(h.Sum(nil)) + "-" + strconv.Itoa(len(req.Parts)),
		ctype: up.ctype, meta: up.meta, mod: time.Now()}
	f.objects[up.key] = o
	delete(f.uploads, id)
	w.Header().Set(crcHeader, f.crc64(o))
	WriteXML(w, struct {
		XMLName  xml.Name `xml:"CompleteMultipartUploadResult"`
		Location string
		Bucket   string
		Key      string
		ETag     string
	}{Location: Host + "/" + up.key, Bucket: Bucket, Key: up.key, ETag: `"` + o.etag + `"`})
}

func (f *Fake) listParts(w http.ResponseWriter, r *http.Request, up *upload) {
	q := r.URL.Query()
	marker, _ := strconv.Atoi(q.Get("part-number-marker"))
	max, _ := strconv.Atoi(q.Get("max-parts"))
	if max <= 0 || max > 2 {
		max = 2 // small pages, to exercise paging
	}
	var nums []int
	for n := range up.parts {
		if n > marker {
			nums = append(nums, n)
		}
	}
	sort.Ints(nums)
	type part struct {
		PartNumber   int
		LastModified string
		ETag         string
		Size         int
	}
	res := struct {
		XMLName              xml.Name `xml:"ListPartsResult"`
		IsTruncated          bool
		NextPartNumberMarker int
		Parts                []part `xml:"Part"`
	}{}
	for i, n := range nums {
		if i == max {
			res.IsTruncated = true
			break
		}
		p := up.parts[n]
		res.Parts = append(res.Parts, part{n, p.mod.UTC().Format(time.RFC3339), `"` + p.etag + `"`, len(p.data)})
		res.NextPartNumberMarker = n
	}
	WriteXML(w, res)
}

func (f *Fake) listUploads(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	enc := q.Get("encoding-type") == "url"
	prefix, keyMarker, idMarker := q.Get("prefix"), q.Get("key-marker"), q.Get("upload-id-marker")
	var ids []string
	for id, up := range f.uploads {
		if !strings.HasPrefix(up.key, prefix) {
			continue
		}
		if up.key < keyMarker || up.key == keyMarker && id <= idMarker {
			continue
		}
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := f.uploads[ids[i]], f.uploads[ids[j]]
		return a.key < b.key || a.key == b.key && ids[i] < ids[j]
	})
	type item struct {
		Key       string
		UploadId  string
		Initiated string
	}
	res := struct {
		XMLName            xml.Name `xml:"ListMultipartUploadsResult"`
		EncodingType       string   `xml:",omitempty"`
		IsTruncated        bool
		NextKeyMarker      string
		NextUploadIdMarker string
		Uploads            []item `xml:"Upload"`
	}{}
	if enc {
		res.EncodingType = "url"
	}
	for i, id := range ids {
		if i == 2 { // small pages
			res.IsTruncated = true
			break
		}
		up := f.uploads[id]
		res.Uploads = append(res.Uploads, item{encodeIf(enc, up.key), id, up.initiated.UTC().Format(time.RFC3339)})
		res.NextKeyMarker, res.NextUploadIdMarker = encodeIf(enc, up.key), id
	}
	WriteXML(w, res)
}

func encodeIf(on bool, s string) string {
	if on {
		return url.QueryEscape(s)
	}
	return s
}

func (f *Fake) deleteMany(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.Header.Get("Content-MD5") != md5Base64(body) {
		f.t.Errorf("delete many without a right Content-MD5")
		writeError(w, r, 400, "InvalidDigest", "Content-MD5 required")
		return
	}
	var req deleteRequest
	if err := xml.Unmarshal(body, &req); err != nil || len(req.Objects) > 1000 {
		writeError(w, r, 400, "MalformedXML", "bad Delete")
		return
	}
	type deleted struct{ Key string }
	res := struct {
		XMLName xml.Name  `xml:"DeleteResult"`
		Deleted []deleted `xml:"Deleted"`
	}{}
	for _, o := range req.Objects {
		delete(f.objects, o.Key)
		if !req.Quiet {
			res.Deleted = append(res.Deleted, deleted{o.Key})
		}
	}
	WriteXML(w, res)
}

// list is ListObjects V1. Like S3, it gives NextMarker only when a
// delimiter was asked for, so both ways of continuing get exercised.
func (f *Fake) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Has("list-type") {
		f.t.Errorf("COS is listed with V1, not %s", r.RequestURI)
	}
	enc := q.Get("encoding-type") == "url"
	prefix, delim, marker := q.Get("prefix"), q.Get("delimiter"), q.Get("marker")
	max := 1000
	if v := q.Get("max-keys"); v != "" {
		max, _ = strconv.Atoi(v)
	}
	if f.maxKeys > 0 {
		max = min(max, f.maxKeys)
	}
	keys := make([]string, 0, len(f.objects))
	for k := range f.objects {
		if strings.HasPrefix(k, prefix) && k > marker {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	type content struct {
		Key          string
		LastModified string
		ETag         string
		Size         int
		StorageClass string
	}
	type cp struct{ Prefix string }
	res := struct {
		XMLName        xml.Name `xml:"ListBucketResult"`
		Name           string
		EncodingType   string `xml:",omitempty"`
		Prefix         string
		Marker         string
		MaxKeys        int
		IsTruncated    bool
		NextMarker     string `xml:",omitempty"`
		Contents       []content
		CommonPrefixes []cp
	}{Name: Bucket, Prefix: encodeIf(enc, prefix), Marker: encodeIf(enc, marker), MaxKeys: max}
	if enc {
		res.EncodingType = "url"
	}
	n, last := 0, ""
	for _, k := range keys {
		entry, isPrefix := k, false
		if delim != "" {
			if i := strings.Index(k[len(prefix):], delim); i >= 0 {
				entry, isPrefix = k[:len(prefix)+i+len(delim)], true
			}
		}
		if isPrefix && (entry <= marker || entry == last) {
			continue
		}
		if n == max {
			res.IsTruncated = true
			break
		}
		n++
		last = entry
		if isPrefix {
			res.CommonPrefixes = append(res.CommonPrefixes, cp{encodeIf(enc, entry)})
			continue
		}
		o := f.objects[k]
		res.Contents = append(res.Contents, content{encodeIf(enc, k), o.mod.UTC().Format("2006-01-02T15:04:05.000Z"),
			`"` + o.etag + `"`, len(o.data), "STANDARD"})
	}
	if res.IsTruncated && delim != "" {
		res.NextMarker = encodeIf(enc, last)
	}
	WriteXML(w, res)
}

// The documents clients send.

type deleteRequest struct {
	XMLName xml.Name `xml:"Delete"`
	Quiet   bool     `xml:"Quiet"`
	Objects []struct {
		Key string `xml:"Key"`
	} `xml:"Object"`
}

type completeRequest struct {
	XMLName xml.Name `xml:"CompleteMultipartUpload"`
	Parts   []struct {
		PartNumber int    `xml:"PartNumber"`
		ETag       string `xml:"ETag"`
	} `xml:"Part"`
}
