package clerkapi

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestRefreshSession(t *testing.T) {
	const expired, refresh = "eyJ.expired.tokenCANARY", "rt_refreshCANARY"
	c, f := newFake(t, fixed(200, `{"object":"cookies","cookies":["__session=new; Path=/"]}`), nil)
	got, err := c.RefreshSession(t.Context(), "sess_123", RefreshParams{
		ExpiredToken: expired, RefreshToken: refresh, RequestOrigin: "https://app.example.com",
		RequestOriginatingIP: "198.51.100.1", RequestHeaders: map[string][]string{"User-Agent": {"ua"}}, SuffixedCookies: true,
	})
	if err != nil || len(got) != 1 || got[0] != "__session=new; Path=/" {
		t.Fatalf("%q %v", got, err)
	}
	r := f.requests()[0]
	var body map[string]any
	if r.Method != "POST" || r.Path != "/v1/sessions/sess_123/refresh" || r.RawQuery != "suffixed_cookies=true" || json.Unmarshal([]byte(r.Body), &body) != nil {
		t.Fatalf("request %+v", r)
	}
	if body["format"] != "cookie" || body["expired_token"] != expired || body["refresh_token"] != refresh ||
		body["request_origin"] != "https://app.example.com" || body["request_originating_ip"] != "198.51.100.1" {
		t.Errorf("body %s", r.Body)
	}

	// Clerk's refusal: an *APIError with its code; neither token in it.
	c, _ = newFake(t, fixed(401, `{"errors":[{"code":"refresh_token_invalid","message":"bad `+refresh+` for `+expired+`"}]}`), nil)
	_, err = c.RefreshSession(t.Context(), "sess_123", RefreshParams{ExpiredToken: expired, RefreshToken: refresh, RequestOrigin: "https://a"})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Errors[0].Code != "refresh_token_invalid" || strings.Contains(err.Error(), "CANARY") {
		t.Errorf("refusal: %v", err)
	}
	// Not retried: a refresh token may be single-use.
	c, f = newFake(t, fixed(503, `{}`), nil)
	if _, err := c.RefreshSession(t.Context(), "sess_123", RefreshParams{ExpiredToken: expired, RefreshToken: refresh, RequestOrigin: "https://a"}); err == nil || len(f.requests()) != 1 {
		t.Errorf("503: %v after %d calls", err, len(f.requests()))
	}
	// Checked before any call.
	for name, p := range map[string]RefreshParams{
		"no expired token": {RefreshToken: refresh, RequestOrigin: "https://a"},
		"no refresh token": {ExpiredToken: expired, RequestOrigin: "https://a"},
		"no origin":        {ExpiredToken: expired, RefreshToken: refresh},
		"huge token":       {ExpiredToken: strings.Repeat("x", 17<<10), RefreshToken: refresh, RequestOrigin: "https://a"},
	} {
		if _, err := c.RefreshSession(t.Context(), "sess_123", p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := c.RefreshSession(t.Context(), "sess_1/../x", RefreshParams{ExpiredToken: expired, RefreshToken: refresh, RequestOrigin: "https://a"}); err == nil {
		t.Error("a bad session id was sent")
	}
	if n := len(f.requests()); n != 1 {
		t.Errorf("%d calls for invalid parameters", n)
	}
}
