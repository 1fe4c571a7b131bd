package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// ParseCredentialsJSON reads keys from the JSON a credential command or an
// STS endpoint answers. Key names are matched case-insensitively. Accepted
// shapes, tried in this order:
//
//  1. Tencent Cloud STS's answer:
//     {"Response":{"Credentials":{"TmpSecretId","TmpSecretKey","Token"},
//     "ExpiredTime":unix,"Expiration":"RFC 3339"}}; an answer
//     {"Response":{"Error":{"Code","Message"}}} is returned as an error.
//  2. Tencent's STS helper libraries (qcloud-cos-sts):
//     {"credentials":{"tmpSecretId","tmpSecretKey","sessionToken" or "Token"},
//     "expiredTime":unix,"expiration":"RFC 3339","startTime":unix}.
//  3. The COS SDK's getAuthorization callback, which is also the CVM
//     instance-role answer: {"TmpSecretId","TmpSecretKey","SecurityToken" or
//     "XCosSecurityToken" or "Token","StartTime":unix,"ExpiredTime":unix};
//     a "Code" other than "Success" is an error.
//  4. AWS credential_process: {"AccessKeyId","SecretAccessKey",
//     "SessionToken","Expiration":"RFC 3339"}; without Expiration the keys
//     are permanent.
//
// Unix times may be JSON numbers or numeric strings, in seconds. The
// Tencent shapes need an expiry (ExpiredTime, or else Expiration). Keys that
// have already expired by now are an error. Errors name the field at fault
// and never quote a value from the input.
func ParseCredentialsJSON(body []byte, now time.Time) (Credentials, error) {
	var top jobj
	if err := decodeObject(body, &top); err != nil {
		return Credentials{}, err
	}
	switch {
	case top.has("Response"):
		return parseSTSAnswer(top, now)
	case top.has("Credentials"):
		return parseHelperShape(top, now)
	case top.has("TmpSecretId"):
		return parseCallbackShape(top, now)
	case top.has("AccessKeyId"):
		return parseAWSShape(top, now)
	}
	return Credentials{}, errors.New("unrecognised credentials JSON: no TmpSecretId, Response, Credentials or AccessKeyId key at the top level")
}

// jobj is a JSON object whose values are decoded on demand.
type jobj map[string]json.RawMessage

func decodeObject(data []byte, into *jobj) error {
	data = bytes.TrimSpace(data)
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if len(data) == 0 {
		return errors.New("empty answer, want a JSON object")
	}
	if data[0] != '{' {
		return errors.New("answer is not a JSON object")
	}
	if err := json.Unmarshal(data, into); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return fmt.Errorf("malformed JSON near byte %d", se.Offset)
		}
		// Never echo the decoder's message: it may quote the input.
		return errors.New("malformed JSON object")
	}
	return nil
}

// raw returns the value of the first of names present (matched
// case-insensitively, an exact match first); null counts as absent.
func (o jobj) raw(names ...string) (json.RawMessage, bool) {
	for _, n := range names {
		if v, ok := o[n]; ok && !isNull(v) {
			return v, true
		}
	}
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, n := range names {
		for _, k := range keys {
			if strings.EqualFold(k, n) && !isNull(o[k]) {
				return o[k], true
			}
		}
	}
	return nil, false
}

func (o jobj) has(name string) bool { _, ok := o.raw(name); return ok }

func isNull(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }

// object decodes the named member as an object.
func (o jobj) object(label string, names ...string) (jobj, error) {
	v, ok := o.raw(names...)
	if !ok {
		return nil, fmt.Errorf("missing %s", label)
	}
	var sub jobj
	if t := bytes.TrimSpace(v); len(t) == 0 || t[0] != '{' || json.Unmarshal(t, &sub) != nil {
		return nil, fmt.Errorf("%s is not a JSON object", label)
	}
	return sub, nil
}

// str decodes an optional string member; present reports whether it is there.
func (o jobj) str(label string, names ...string) (s string, present bool, err error) {
	v, ok := o.raw(names...)
	if !ok {
		return "", false, nil
	}
	if t := bytes.TrimSpace(v); len(t) == 0 || t[0] != '"' || json.Unmarshal(t, &s) != nil {
		return "", true, fmt.Errorf("%s is not a string", label)
	}
	return strings.TrimSpace(s), true, nil
}

// need decodes a required, non-empty string member.
func (o jobj) need(label string, names ...string) (string, error) {
	s, ok, err := o.str(label, names...)
	switch {
	case err != nil:
		return "", err
	case !ok:
		return "", fmt.Errorf("missing %s", label)
	case s == "":
		return "", fmt.Errorf("%s is empty", label)
	}
	return s, nil
}

// unix decodes an optional unix time in seconds, given as a JSON number or a
// numeric string.
func (o jobj) unix(label string, names ...string) (time.Time, bool, error) {
	v, ok := o.raw(names...)
	if !ok {
		return time.Time{}, false, nil
	}
	s := string(bytes.TrimSpace(v))
	if strings.HasPrefix(s, `"`) {
		if json.Unmarshal(v, &s) != nil {
			return time.Time{}, true, fmt.Errorf("%s is not a unix time", label)
		}
		s = strings.TrimSpace(s)
	}
	t, err := parseUnixSeconds(s)
	if err != nil {
		return time.Time{}, true, fmt.Errorf("%s %v", label, err)
	}
	return t, true, nil
}

func parseUnixSeconds(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return unixSecondsChecked(float64(n), n, 0)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return time.Time{}, errors.New("is not a unix time (want seconds, as a number or a numeric string)")
	}
	sec, frac := math.Modf(f)
	return unixSecondsChecked(f, int64(sec), int64(frac*1e9))
}

func unixSecondsChecked(f float64, sec, nsec int64) (time.Time, error) {
	switch {
	case f <= 0:
		return time.Time{}, errors.New("is not a positive unix time")
	case f >= 1e11: // year 5138: surely milliseconds or microseconds
		return time.Time{}, errors.New("is too large for unix seconds (milliseconds?)")
	}
	return time.Unix(sec, nsec), nil
}

// rfc3339 decodes an optional RFC 3339 time string.
func (o jobj) rfc3339(label string, names ...string) (time.Time, bool, error) {
	s, ok, err := o.str(label, names...)
	if err != nil || !ok {
		return time.Time{}, ok, err
	}
	t, perr := time.Parse(time.RFC3339, s)
	if perr != nil {
		return time.Time{}, true, fmt.Errorf("%s is not an RFC 3339 time such as 2006-01-02T15:04:05Z", label)
	}
	return t, true, nil
}

// times reads StartTime and the expiry (ExpiredTime, else Expiration) from
// o, and checks them against now.
func (o jobj) times(c *Credentials, required bool, now time.Time, prefix string) error {
	exp, ok, err := o.unix(prefix+"ExpiredTime", "ExpiredTime")
	if err != nil {
		return err
	}
	if !ok {
		if exp, ok, err = o.rfc3339(prefix+"Expiration", "Expiration"); err != nil {
			return err
		}
	}
	if !ok && required {
		return fmt.Errorf("missing %sExpiredTime (or %sExpiration)", prefix, prefix)
	}
	start, _, err := o.unix(prefix+"StartTime", "StartTime")
	if err != nil {
		return err
	}
	c.StartTime, c.ExpiredTime = start, exp
	return checkTimes(*c, now)
}

// checkTimes refuses keys that are already expired, or whose StartTime is
// not before their expiry.
func checkTimes(c Credentials, now time.Time) error {
	if c.ExpiredTime.IsZero() {
		return nil
	}
	if !c.StartTime.IsZero() && !c.StartTime.Before(c.ExpiredTime) {
		return fmt.Errorf("StartTime %s is not before the expiry %s",
			c.StartTime.UTC().Format(time.RFC3339), c.ExpiredTime.UTC().Format(time.RFC3339))
	}
	if !now.Before(c.ExpiredTime) {
		return fmt.Errorf("credentials expired at %s, %s ago",
			c.ExpiredTime.UTC().Format(time.RFC3339), now.Sub(c.ExpiredTime).Round(time.Second))
	}
	return nil
}

func parseSTSAnswer(top jobj, now time.Time) (Credentials, error) {
	resp, err := top.object("Response", "Response")
	if err != nil {
		return Credentials{}, err
	}
	if resp.has("Error") {
		return Credentials{}, stsError(resp)
	}
	cr, err := resp.object("Response.Credentials", "Credentials")
	if err != nil {
		return Credentials{}, err
	}
	var c Credentials
	if c.SecretID, err = cr.need("Response.Credentials.TmpSecretId", "TmpSecretId"); err != nil {
		return Credentials{}, err
	}
	if c.SecretKey, err = cr.need("Response.Credentials.TmpSecretKey", "TmpSecretKey"); err != nil {
		return Credentials{}, err
	}
	if c.SessionToken, _, err = cr.str("Response.Credentials.Token", "Token", "SessionToken", "SecurityToken"); err != nil {
		return Credentials{}, err
	}
	if err := resp.times(&c, true, now, "Response."); err != nil {
		return Credentials{}, err
	}
	return c, nil
}

// stsError describes the Error of a Tencent STS answer's Response.
func stsError(resp jobj) error {
	e, err := resp.object("Response.Error", "Error")
	if err != nil {
		return err
	}
	code, _, _ := e.str("Code", "Code")
	msg, _, _ := e.str("Message", "Message")
	reqID, _, _ := resp.str("RequestId", "RequestId")
	s := "STS error " + oneLine(code, 80)
	if msg != "" {
		s += ": " + oneLine(msg, 200)
	}
	if reqID != "" {
		s += " (RequestId " + oneLine(reqID, 80) + ")"
	}
	return errors.New(s)
}

// stsErrorIn returns the error of body when it is a Tencent STS error answer.
func stsErrorIn(body []byte) error {
	var top jobj
	if decodeObject(body, &top) != nil {
		return nil
	}
	resp, err := top.object("Response", "Response")
	if err != nil || !resp.has("Error") {
		return nil
	}
	return stsError(resp)
}

func parseHelperShape(top jobj, now time.Time) (Credentials, error) {
	cr, err := top.object("credentials", "Credentials")
	if err != nil {
		return Credentials{}, err
	}
	var c Credentials
	if c.SecretID, err = cr.need("credentials.tmpSecretId", "TmpSecretId"); err != nil {
		return Credentials{}, err
	}
	if c.SecretKey, err = cr.need("credentials.tmpSecretKey", "TmpSecretKey"); err != nil {
		return Credentials{}, err
	}
	if c.SessionToken, _, err = cr.str("credentials.sessionToken", "SessionToken", "Token", "SecurityToken"); err != nil {
		return Credentials{}, err
	}
	if err := top.times(&c, true, now, ""); err != nil {
		return Credentials{}, err
	}
	return c, nil
}

func parseCallbackShape(top jobj, now time.Time) (Credentials, error) {
	if code, ok, _ := top.str("Code", "Code"); ok && code != "Success" {
		msg, _, _ := top.str("Message", "Message")
		s := "credential answer has Code " + strconv.Quote(oneLine(code, 80))
		if msg != "" {
			s += ": " + oneLine(msg, 200)
		}
		return Credentials{}, errors.New(s)
	}
	var c Credentials
	var err error
	if c.SecretID, err = top.need("TmpSecretId", "TmpSecretId"); err != nil {
		return Credentials{}, err
	}
	if c.SecretKey, err = top.need("TmpSecretKey", "TmpSecretKey"); err != nil {
		return Credentials{}, err
	}
	if c.SessionToken, _, err = top.str("SecurityToken", "SecurityToken", "XCosSecurityToken", "Token", "SessionToken"); err != nil {
		return Credentials{}, err
	}
	if err := top.times(&c, true, now, ""); err != nil {
		return Credentials{}, err
	}
	return c, nil
}

func parseAWSShape(top jobj, now time.Time) (Credentials, error) {
	var c Credentials
	var err error
	if c.SecretID, err = top.need("AccessKeyId", "AccessKeyId"); err != nil {
		return Credentials{}, err
	}
	if c.SecretKey, err = top.need("SecretAccessKey", "SecretAccessKey"); err != nil {
		return Credentials{}, err
	}
	if c.SessionToken, _, err = top.str("SessionToken", "SessionToken", "Token"); err != nil {
		return Credentials{}, err
	}
	if c.ExpiredTime, _, err = top.rfc3339("Expiration", "Expiration"); err != nil {
		return Credentials{}, err
	}
	if err := checkTimes(c, now); err != nil {
		return Credentials{}, err
	}
	return c, nil
}

// oneLine makes s printable on one line of at most max runes: control
// characters become spaces, runs of spaces collapse, the rest is cut with
// "...".
func oneLine(s string, max int) string {
	var b strings.Builder
	n := 0
	space := false
	for _, r := range strings.TrimSpace(s) {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
			n++
		}
		space = false
		if n >= max {
			b.WriteString("...")
			break
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}
