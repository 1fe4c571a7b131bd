package transport

import (
	"encoding/xml"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// listV1Result and listV2Result are the answers as xml.Unmarshal reads
// them: the reference decodeList is checked against.
type listV1Result struct {
	IsTruncated    bool
	NextMarker     string
	EncodingType   string
	Contents       []xmlObject
	CommonPrefixes []xmlPrefix
}

type listV2Result struct {
	IsTruncated           bool
	NextContinuationToken string
	EncodingType          string
	Contents              []xmlObject
	CommonPrefixes        []xmlPrefix
}

// listXML builds a listing answer with the quirks servers send: entities,
// CDATA, spaces, nested owners, unknown elements, a namespace.
func listXML(rng *rand.Rand, n int) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">`)
	b.WriteString(`<Name>b</Name><Prefix>p/</Prefix><KeyCount>` + fmt.Sprint(n) + `</KeyCount>`)
	if rng.IntN(2) == 0 {
		b.WriteString(`<IsTruncated> true </IsTruncated><NextContinuationToken>tok&amp;en/+=</NextContinuationToken><NextMarker>m&lt;k</NextMarker>`)
	} else {
		b.WriteString(`<IsTruncated>false</IsTruncated>`)
	}
	b.WriteString(`<EncodingType>url</EncodingType>`)
	names := []string{"plain", "a%20b", "x&amp;y", "&lt;tag&gt;", "<![CDATA[c<d]]>", "é%2F", "&#x41;&#66;", " spaced "}
	for i := 0; i < n; i++ {
		if rng.IntN(5) == 0 {
			fmt.Fprintf(&b, `<CommonPrefixes><Prefix>p/%s%d/</Prefix></CommonPrefixes>`, names[rng.IntN(len(names))], i)
			continue
		}
		fmt.Fprintf(&b, "\n  <Contents><Key>p/%s%d</Key><LastModified>2026-11-29T10:00:0%dZ</LastModified>", names[rng.IntN(len(names))], i, i%10)
		fmt.Fprintf(&b, `<ETag>&quot;%032x&quot;</ETag><Size> %d </Size>`, rng.Uint64(), rng.Int64N(1<<40))
		if rng.IntN(2) == 0 {
			b.WriteString(`<Owner><ID>o</ID><DisplayName>Key</DisplayName></Owner>`)
		}
		if rng.IntN(3) == 0 {
			b.WriteString(`<Unknown><Key>not this</Key></Unknown><!-- a comment -->`)
		}
		b.WriteString(`<StorageClass>STANDARD</StorageClass></Contents>`)
	}
	b.WriteString(`</ListBucketResult>`)
	return b.String()
}

// decodeList takes the same from an answer as xml.Unmarshal.
func TestDecodeListMatchesUnmarshal(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 300; i++ {
		body := listXML(rng, rng.IntN(40))
		var v2 listV2Result
		var v1 listV1Result
		if err := xml.Unmarshal([]byte(body), &v2); err != nil {
			t.Fatal(err)
		}
		if err := xml.Unmarshal([]byte(body), &v1); err != nil {
			t.Fatal(err)
		}
		got, err := decodeList([]byte(body), nil)
		if err != nil {
			t.Fatalf("decodeList: %v\n%s", err, body)
		}
		want := listResult{IsTruncated: v2.IsTruncated, NextMarker: v1.NextMarker, NextContinuationToken: v2.NextContinuationToken,
			EncodingType: v2.EncodingType, Contents: v2.Contents, CommonPrefixes: v2.CommonPrefixes}
		if !reflect.DeepEqual(*got, want) {
			t.Fatalf("decodeList differs from Unmarshal\ngot  %+v\nwant %+v\n%s", *got, want, body)
		}
	}
	for _, bad := range []string{
		`<ListBucketResult><Contents><Key>k</Contents></ListBucketResult>`,
		`<ListBucketResult><IsTruncated>maybe</IsTruncated></ListBucketResult>`,
		`<ListBucketResult><Contents><Size>big</Size></Contents></ListBucketResult>`,
		`<ListBucketResult><Contents>`,
		`not xml at all <`,
	} {
		if _, err := decodeList([]byte(bad), nil); err == nil {
			t.Errorf("decodeList accepted %q", bad)
		}
	}
}

func BenchmarkDecodeList(b *testing.B) {
	body := []byte(listXML(rand.New(rand.NewPCG(3, 4)), 1000))
	b.Run("tokens", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := decodeList(body, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unmarshal", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			var v listV2Result
			if err := xml.Unmarshal(body, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
