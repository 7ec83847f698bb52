package devmode

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
)

// TokenRequest is the body of the fake's POST /v1/testing/tokens.
type TokenRequest struct {
	UserID          string `json:"user_id"`                    // sub
	OrgID           string `json:"org_id,omitempty"`           // the active organization
	OrgRole         string `json:"org_role,omitempty"`         // needs OrgID; the fake's default is admin
	OrgSlug         string `json:"org_slug,omitempty"`         // needs OrgID
	LifetimeSeconds int64  `json:"lifetime_seconds,omitempty"` // 0: the fake's TokenLifetime; at most MaxTokenLifetime
}

// Token asks the fake Clerk instance of a running dev mode, at clerkURL,
// for a session token (`sessiongate dev token`).
func Token(ctx context.Context, clerkURL, secretKey string, req TokenRequest) (string, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	endpoint := strings.TrimRight(clerkURL, "/") + clerktest.TestingTokensPath
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("--clerk %q: %w", clerkURL, err)
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Authorization", "Bearer "+secretKey)
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		return "", fmt.Errorf("%w (is `sessiongate dev` running, with its fake Clerk instance on %s? see --clerk)", err, clerkURL)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("reading the answer of %s: %w", endpoint, err)
	}
	if resp.StatusCode != http.StatusOK {
		var ce struct {
			Errors []struct {
				Message     string `json:"message"`
				LongMessage string `json:"long_message"`
				Code        string `json:"code"`
			} `json:"errors"`
		}
		if json.Unmarshal(raw, &ce) == nil && len(ce.Errors) > 0 {
			e := ce.Errors[0]
			msg := e.Message
			if e.LongMessage != "" && e.LongMessage != e.Message {
				msg += ": " + e.LongMessage
			}
			return "", fmt.Errorf("%s answered %d %s: %s", endpoint, resp.StatusCode, e.Code, msg)
		}
		return "", fmt.Errorf("%s answered %d (not a fake Clerk instance? see --clerk)", endpoint, resp.StatusCode)
	}
	var out struct {
		Object string `json:"object"`
		JWT    string `json:"jwt"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || out.Object != "token" || out.JWT == "" {
		return "", fmt.Errorf("%s answered 200 without a token (not a fake Clerk instance? see --clerk)", endpoint)
	}
	return out.JWT, nil
}
