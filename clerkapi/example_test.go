package clerkapi_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/sessiongate/sessiongate/clerkapi"
)

func Example() {
	// A stand-in for https://api.clerk.com serving one session.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") != "Bearer sk_test_example" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.URL.Path != "/v1/sessions/sess_2abc" {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"errors":[{"code":"resource_not_found","message":"not found","long_message":"Session not found"}],"clerk_trace_id":"t-42"}`)
			return
		}
		io.WriteString(w, `{"object":"session","id":"sess_2abc","user_id":"user_2xyz","client_id":"client_2def",`+
			`"status":"active","last_active_at":1778580000000,"expire_at":1779184800000,"abandon_at":1781172000000,`+
			`"updated_at":1778580000000,"created_at":1778576400000}`)
	}))
	defer srv.Close()

	c, err := clerkapi.New(clerkapi.Config{
		SecretKey: "sk_test_example",
		APIURL:    srv.URL, // leave empty for https://api.clerk.com
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	s, err := c.Get(ctx, "sess_2abc")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s.ID, s.UserID, s.Status, s.Status == clerkapi.StatusActive)
	fmt.Println("expires", time.UnixMilli(s.ExpireAt).UTC().Format(time.RFC3339))

	_, err = c.Get(ctx, "sess_gone")
	fmt.Println(errors.Is(err, clerkapi.ErrNotFound), err)

	_, err = c.Get(ctx, "../users")
	fmt.Println(errors.Is(err, clerkapi.ErrInvalidParams))
	// Output:
	// sess_2abc user_2xyz active true
	// expires 2026-05-19T10:00:00Z
	// true clerkapi: GET /v1/sessions/{id}: 404 resource_not_found: not found (trace t-42)
	// true
}
