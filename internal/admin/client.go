package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultURL is the admin listener the CLI calls when none is given.
const DefaultURL = "http://127.0.0.1:9090"

const (
	// dialTimeout bounds reaching the admin listener: past it the listener
	// counts as unreachable (ErrUnreachable).
	dialTimeout = 5 * time.Second
	// answerTimeout bounds the admin's answer once connected. It exceeds
	// the server's own Clerk deadline (clerkTimeout), so a slow Clerk is
	// reported by the server rather than cut short here.
	answerTimeout = 15 * time.Second
)

// ErrUnreachable wraps a failure to connect to the admin listener: nothing
// reached it, so falling back to Clerk is safe.
var ErrUnreachable = errors.New("admin listener unreachable")

// RevokeURL joins the admin base URL and /sessions/{sid}/revoke. The base
// must be an http(s) URL with a host and no user info, query or fragment.
func RevokeURL(base, sid string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%q is not an http(s) URL with a host", base)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q must not carry user info, a query or a fragment", base)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/sessions/" + url.PathEscape(sid) + "/revoke"
	u.RawPath = ""
	return u.String(), nil
}

// Revoke posts to the revoke endpoint (from RevokeURL) with token as the
// bearer admin token ("": none). A failure to connect wraps ErrUnreachable;
// a non-2xx answer is returned with its status and decoded body (or, when
// the body is not JSON, its first 200 bytes as Message), not as an error.
func Revoke(endpoint, token string) (RevokeReply, int, error) {
	var ans RevokeReply
	dialer := &net.Dialer{Timeout: dialTimeout}
	hc := &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil, // the admin listener is local infrastructure
			DialContext:           dialer.DialContext,
			TLSHandshakeTimeout:   dialTimeout,
			ResponseHeaderTimeout: answerTimeout,
		},
		// A redirect would carry the admin token elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       dialTimeout + answerTimeout,
	}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodPost, endpoint, nil)
	if err != nil {
		return ans, 0, err
	}
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return ans, 0, fmt.Errorf("%w: %v", ErrUnreachable, op)
		}
		return ans, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return ans, resp.StatusCode, fmt.Errorf("reading the answer: %w", err)
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
			return ans, resp.StatusCode, fmt.Errorf("answer %d is not the revoke endpoint's JSON", resp.StatusCode)
		}
		ans.Message = strings.TrimSpace(string(body))
		if len(ans.Message) > 200 {
			ans.Message = ans.Message[:200]
		}
	}
	return ans, resp.StatusCode, nil
}
