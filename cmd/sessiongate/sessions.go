package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sessiongate/sessiongate/clerkapi"
	"github.com/sessiongate/sessiongate/internal/admin"
	"github.com/sessiongate/sessiongate/internal/clerkwire"
)

const sessionsUsage = `usage: sessiongate sessions COMMAND [flags] [args]

Commands (flags may come before or after the arguments; "--" ends the flags):
  list   (--user-id ID | --client-id ID) [--status S] [--limit N] [--offset N] [--all] [--json]
  get    SID [--json]
  revoke SID [--admin URL] [--admin-token T] [--no-local] [--json]
         revokes at Clerk and denies locally through the running sessiongate's
         admin listener (POST /sessions/{sid}/revoke); if that listener cannot
         be reached, revokes at Clerk directly and warns
  verify SID TOKEN [--api-version V] [--json]   (deprecated Clerk endpoint)
  token  SID [--template NAME] [--expires-in SECONDS] [--json]
         prints the JWT alone, so $(sessiongate sessions token SID) works

Environment:
  CLERK_SECRET_KEY         Backend API secret key (required, except for a revoke
                           the admin listener performs)
  CLERK_API_URL            Backend API origin (default https://api.clerk.com)
  SESSIONGATE_ADMIN_URL    admin listener of the running sessiongate
                           (default http://127.0.0.1:9090)
  SESSIONGATE_ADMIN_TOKEN  its bearer admin token, when one is configured

Exit status: 0 ok, 1 Clerk or admin listener error, 2 usage or configuration error.
`

// callTimeout bounds one CLI Backend API call (retries included).
const callTimeout = 60 * time.Second

// exitUsage and exitAPI are the exit codes scripts can rely on.
const (
	exitOK    = 0
	exitAPI   = 1
	exitUsage = 2
)

// runSessions is `sessiongate sessions …`.
func runSessions(args []string, stdout, stderr io.Writer) int {
	return sessionsMain(args, os.Getenv, stdout, stderr)
}

// sessionsCmd carries one invocation's I/O and environment.
type sessionsCmd struct {
	name   string // "sessiongate sessions list"
	env    func(string) string
	stdout io.Writer
	stderr io.Writer
}

func sessionsMain(args []string, env func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, sessionsUsage)
		return exitUsage
	}
	c := &sessionsCmd{name: "sessiongate sessions " + args[0], env: env, stdout: stdout, stderr: stderr}
	switch args[0] {
	case "list":
		return c.list(args[1:])
	case "get":
		return c.get(args[1:])
	case "revoke":
		return c.revoke(args[1:])
	case "verify":
		return c.verify(args[1:])
	case "token":
		return c.token(args[1:])
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, sessionsUsage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "sessiongate sessions: unknown command %q\n\n%s", args[0], sessionsUsage)
		return exitUsage
	}
}

func (c *sessionsCmd) flags() *flag.FlagSet {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\nFlags of %s:\n", sessionsUsage, c.name)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags placed anywhere among the arguments and returns the
// positional ones. A "--" ends the flags. It returns a non-nil code when
// parsing ends the command (0 for -h, 2 for a bad flag).
func (c *sessionsCmd) parse(fs *flag.FlagSet, args []string, npos int, posNames string) ([]string, *int) {
	pos, err := parseArgs(fs, args, c.stdout)
	if err != nil {
		code := parseExit(err)
		return nil, &code
	}
	if len(pos) != npos {
		code := c.usagef("want %s, got %d argument(s)", posNames, len(pos))
		return nil, &code
	}
	return pos, nil
}

// usagef reports a usage error: exit 2 with the usage on stderr.
func (c *sessionsCmd) usagef(format string, a ...any) int {
	fmt.Fprintf(c.stderr, "%s: %s\n\n%s", c.name, fmt.Sprintf(format, a...), sessionsUsage)
	return exitUsage
}

func (c *sessionsCmd) checkSID(sid string) *int {
	if !clerkwire.ValidSessionID(sid) {
		code := c.usagef("%q is not a session id (sess_…)", sid)
		return &code
	}
	return nil
}

// client builds the Backend API client from the environment. A missing key
// or a bad CLERK_API_URL is a configuration error (exit 2).
func (c *sessionsCmd) client(apiVersion string) (*clerkapi.Client, *int) {
	sk := c.env("CLERK_SECRET_KEY")
	if sk == "" {
		fmt.Fprintf(c.stderr, "%s: CLERK_SECRET_KEY is not set (the instance's Backend API secret key, sk_live_… or sk_test_…)\n", c.name)
		code := exitUsage
		return nil, &code
	}
	cl, err := clerkapi.New(clerkapi.Config{
		SecretKey:  sk,
		APIURL:     c.env("CLERK_API_URL"),
		APIVersion: apiVersion,
		UserAgent:  "sessiongate-cli",
	})
	if err != nil {
		// clerkapi errors never carry the key.
		fmt.Fprintf(c.stderr, "%s: configuration: %v\n", c.name, err)
		code := exitUsage
		return nil, &code
	}
	return cl, nil
}

// apiError prints a failed Backend API call: Clerk's messages, codes and
// trace id. A call refused before any request (bad parameters) is a usage
// error; everything else exits 1.
func (c *sessionsCmd) apiError(err error) int {
	if errors.Is(err, clerkapi.ErrInvalidParams) {
		return c.usagef("%v", err)
	}
	var de *clerkapi.DeprecatedError
	if errors.As(err, &de) {
		fmt.Fprintf(c.stderr, "%s: %v\n", c.name, de)
	}
	var ae *clerkapi.APIError
	if !errors.As(err, &ae) {
		fmt.Fprintf(c.stderr, "%s: %v\n", c.name, err)
		return exitAPI
	}
	fmt.Fprintf(c.stderr, "%s: Clerk answered %d %s (%s)\n", c.name, ae.StatusCode, http.StatusText(ae.StatusCode), ae.Endpoint)
	for _, d := range ae.Errors {
		line := d.Message
		if d.LongMessage != "" && d.LongMessage != d.Message {
			line += ": " + d.LongMessage
		}
		if d.Code != "" {
			line += " [" + d.Code + "]"
		}
		fmt.Fprintf(c.stderr, "  %s\n", line)
	}
	if ae.RetryAfter > 0 {
		fmt.Fprintf(c.stderr, "  retry after %s\n", ae.RetryAfter)
	}
	if ae.TraceID != "" {
		fmt.Fprintf(c.stderr, "  trace id: %s\n", ae.TraceID)
	}
	return exitAPI
}

func (c *sessionsCmd) printJSON(v any) int {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(c.stderr, "%s: %v\n", c.name, err)
		return exitAPI
	}
	return exitOK
}

func msTime(ms int64) string {
	if ms == 0 {
		return "-"
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ---- list

func (c *sessionsCmd) list(args []string) int {
	fs := c.flags()
	var p clerkapi.ListParams
	fs.StringVar(&p.UserID, "user-id", "", "list the sessions of this user (user_…)")
	fs.StringVar(&p.ClientID, "client-id", "", "list the sessions of this client (client_…)")
	fs.StringVar(&p.Status, "status", "", "only sessions with this status (active, revoked, ended, expired, removed, abandoned, replaced)")
	fs.IntVar(&p.Limit, "limit", 0, "page size, 1..500 (default: Clerk's 10; with --all, 100)")
	fs.IntVar(&p.Offset, "offset", 0, "skip this many sessions")
	all := fs.Bool("all", false, "fetch every page")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, code := c.parse(fs, args, 0, "no argument"); code != nil {
		return *code
	}
	if p.UserID == "" && p.ClientID == "" {
		return c.usagef("--user-id or --client-id is required")
	}
	limitSet := false
	fs.Visit(func(f *flag.Flag) { limitSet = limitSet || f.Name == "limit" })
	if limitSet && (p.Limit < 1 || p.Limit > clerkapi.MaxListLimit) {
		return c.usagef("--limit must be within 1..%d, got %d", clerkapi.MaxListLimit, p.Limit)
	}
	if p.Offset < 0 {
		return c.usagef("--offset must not be negative, got %d", p.Offset)
	}
	cl, code := c.client("")
	if code != nil {
		return *code
	}
	var sessions []clerkapi.Session
	var total int64
	paginated := true
	if *all {
		// Every page is bounded by the client's HTTP timeout and retries;
		// ListAll stops after MaxListAllPages pages.
		ctx, cancel := context.WithTimeout(context.Background(), 10*callTimeout)
		defer cancel()
		for s, err := range cl.ListAll(ctx, p) {
			if err != nil {
				return c.apiError(err)
			}
			sessions = append(sessions, s)
		}
		total = int64(len(sessions))
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		l, err := cl.List(ctx, p)
		if err != nil {
			return c.apiError(err)
		}
		sessions, total, paginated = l.Data, l.TotalCount, l.Paginated
	}
	if sessions == nil {
		sessions = []clerkapi.Session{}
	}
	if *asJSON {
		if !paginated {
			return c.printJSON(sessions)
		}
		return c.printJSON(map[string]any{"data": sessions, "total_count": total})
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSER\tCLIENT\tSTATUS\tLAST ACTIVE\tEXPIRES")
	for _, s := range sessions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, dash(s.UserID), dash(s.ClientID), dash(string(s.Status)), msTime(s.LastActiveAt), msTime(s.ExpireAt))
	}
	_ = tw.Flush()
	if paginated {
		fmt.Fprintf(c.stdout, "total: %d\n", total)
	}
	return exitOK
}

// ---- get

func (c *sessionsCmd) get(args []string) int {
	fs := c.flags()
	asJSON := fs.Bool("json", false, "print JSON")
	pos, code := c.parse(fs, args, 1, "SID")
	if code != nil {
		return *code
	}
	if code := c.checkSID(pos[0]); code != nil {
		return *code
	}
	cl, code := c.client("")
	if code != nil {
		return *code
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	s, err := cl.Get(ctx, pos[0])
	if err != nil {
		return c.apiError(err)
	}
	return c.printSession(s, *asJSON)
}

func (c *sessionsCmd) printSession(s *clerkapi.Session, asJSON bool) int {
	if asJSON {
		return c.printJSON(s)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	kv := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	kv("id", s.ID)
	kv("user_id", dash(s.UserID))
	kv("client_id", dash(s.ClientID))
	kv("status", dash(string(s.Status)))
	if len(s.Actor) > 0 {
		kv("actor", string(s.Actor))
	}
	org := ""
	if s.LastActiveOrganizationID != nil {
		org = *s.LastActiveOrganizationID
	}
	kv("last_active_organization_id", dash(org))
	kv("last_active_at", msTime(s.LastActiveAt))
	kv("expire_at", msTime(s.ExpireAt))
	kv("abandon_at", msTime(s.AbandonAt))
	kv("created_at", msTime(s.CreatedAt))
	kv("updated_at", msTime(s.UpdatedAt))
	if a := s.LatestActivity; a != nil {
		var parts []string
		for _, p := range []string{a.BrowserName, a.BrowserVersion, a.DeviceType, a.IPAddress, a.City, a.Country} {
			if p != "" {
				parts = append(parts, p)
			}
		}
		if a.IsMobile {
			parts = append(parts, "mobile")
		}
		kv("latest_activity", dash(strings.Join(parts, " ")))
	}
	if len(s.Tasks) > 0 {
		keys := make([]string, len(s.Tasks))
		for i, t := range s.Tasks {
			keys[i] = t.Key
		}
		kv("tasks", strings.Join(keys, ", "))
	}
	_ = tw.Flush()
	return exitOK
}

// ---- verify

func (c *sessionsCmd) verify(args []string) int {
	fs := c.flags()
	asJSON := fs.Bool("json", false, "print JSON")
	apiVersion := fs.String("api-version", "", "Clerk-API-Version to send (verify exists only before 2025-04-10)")
	pos, code := c.parse(fs, args, 2, "SID TOKEN")
	if code != nil {
		return *code
	}
	if code := c.checkSID(pos[0]); code != nil {
		return *code
	}
	fmt.Fprintf(c.stderr, "%s: warning: Clerk's verify endpoint is deprecated (gone from API version 2025-04-10); use `sessiongate verify TOKEN` and `sessiongate sessions get SID`\n", c.name)
	cl, code := c.client(*apiVersion)
	if code != nil {
		return *code
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	s, err := cl.Verify(ctx, pos[0], pos[1]) //nolint:staticcheck // the CLI exposes the deprecated endpoint on purpose
	if err != nil {
		return c.apiError(err)
	}
	return c.printSession(s, *asJSON)
}

// ---- token

func (c *sessionsCmd) token(args []string) int {
	fs := c.flags()
	asJSON := fs.Bool("json", false, `print {"object","jwt"}`)
	template := fs.String("template", "", "JWT template name (default: a session token)")
	expiresIn := fs.Int("expires-in", 0, fmt.Sprintf("token lifetime in seconds, %d..%d (default: Clerk's)", clerkapi.MinTokenLifetime, clerkapi.MaxTokenLifetime))
	pos, code := c.parse(fs, args, 1, "SID")
	if code != nil {
		return *code
	}
	if code := c.checkSID(pos[0]); code != nil {
		return *code
	}
	if *expiresIn != 0 && (*expiresIn < clerkapi.MinTokenLifetime || *expiresIn > clerkapi.MaxTokenLifetime) {
		return c.usagef("--expires-in must be within %d..%d, got %d", clerkapi.MinTokenLifetime, clerkapi.MaxTokenLifetime, *expiresIn)
	}
	cl, code := c.client("")
	if code != nil {
		return *code
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	t, err := cl.CreateToken(ctx, pos[0], *template, *expiresIn)
	if err != nil {
		return c.apiError(err)
	}
	if *asJSON {
		return c.printJSON(map[string]string{"object": t.Object, "jwt": t.JWT})
	}
	fmt.Fprintln(c.stdout, t.JWT)
	return exitOK
}

// ---- revoke

// revokeResult is what revoke prints with --json.
type revokeResult struct {
	SessionID      string `json:"session_id"`
	RevokedAtClerk bool   `json:"revoked_at_clerk"`
	Status         string `json:"status,omitempty"`
	DeniedLocally  bool   `json:"denied_locally"`
	DeniedUntil    string `json:"denied_until,omitempty"`
	Admin          string `json:"admin,omitempty"`
}

func (c *sessionsCmd) revoke(args []string) int {
	fs := c.flags()
	asJSON := fs.Bool("json", false, "print JSON")
	adminURL := fs.String("admin", "", "admin listener URL of the running sessiongate (default $SESSIONGATE_ADMIN_URL, else "+admin.DefaultURL+")")
	adminToken := fs.String("admin-token", "", "bearer admin token (default $SESSIONGATE_ADMIN_TOKEN)")
	noLocal := fs.Bool("no-local", false, "revoke at Clerk only, without telling a running sessiongate")
	pos, code := c.parse(fs, args, 1, "SID")
	if code != nil {
		return *code
	}
	sid := pos[0]
	if code := c.checkSID(sid); code != nil {
		return *code
	}
	res := revokeResult{SessionID: sid}
	if !*noLocal {
		base := *adminURL
		if base == "" {
			base = c.env("SESSIONGATE_ADMIN_URL")
		}
		if base == "" {
			base = admin.DefaultURL
		}
		endpoint, err := admin.RevokeURL(base, sid)
		if err != nil {
			return c.usagef("--admin: %v", err)
		}
		tok := *adminToken
		if tok == "" {
			tok = c.env("SESSIONGATE_ADMIN_TOKEN")
		}
		ans, status, err := admin.Revoke(endpoint, tok)
		switch {
		case errors.Is(err, admin.ErrUnreachable):
			fmt.Fprintf(c.stderr, "%s: warning: %v; revoking at Clerk directly: no local sessiongate was told (running gates learn it through webhooks or session checks)\n", c.name, err)
		case err != nil:
			// Connected but no usable answer: the gate may have denied the
			// session and Clerk may or may not have revoked it.
			fmt.Fprintf(c.stderr, "%s: admin listener %s: %v (the outcome is unknown; run the command again)\n", c.name, base, err)
			return exitAPI
		case status < 200 || status > 299:
			msg := ans.Message
			if msg == "" {
				msg = ans.Error
			}
			if msg == "" && status == http.StatusNotFound {
				msg = "no revoke endpoint (a sessiongate without it, or not an admin listener)"
			}
			fmt.Fprintf(c.stderr, "%s: admin listener answered %d %s: %s\n", c.name, status, http.StatusText(status), dash(msg))
			if ans.DeniedLocally {
				fmt.Fprintf(c.stderr, "%s: the session is denied locally until %s\n", c.name, dash(ans.DeniedUntil))
			}
			return exitAPI
		default:
			res.Admin = base
			res.DeniedLocally = ans.DeniedLocally
			res.DeniedUntil = ans.DeniedUntil
			if ans.Clerk == admin.ClerkRevoked {
				res.RevokedAtClerk, res.Status = true, ans.Status
				return c.printRevoke(res, *asJSON)
			}
			// The gate has no secret key: Clerk is still to be told.
			fmt.Fprintf(c.stderr, "%s: the admin listener denied the session locally but did not revoke it at Clerk (%s)\n", c.name, dash(ans.Clerk))
			if c.env("CLERK_SECRET_KEY") == "" {
				fmt.Fprintf(c.stderr, "%s: CLERK_SECRET_KEY is not set: the session was NOT revoked at Clerk\n", c.name)
				return exitAPI
			}
		}
	}
	cl, code := c.client("")
	if code != nil {
		if !*noLocal {
			// The key was needed only for the fallback: the revocation
			// failed, it is not a usage error.
			return exitAPI
		}
		return *code
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	s, err := cl.Revoke(ctx, sid)
	if err != nil {
		return c.apiError(err)
	}
	res.RevokedAtClerk, res.Status = true, string(s.Status)
	return c.printRevoke(res, *asJSON)
}

func (c *sessionsCmd) printRevoke(r revokeResult, asJSON bool) int {
	if asJSON {
		return c.printJSON(r)
	}
	fmt.Fprintf(c.stdout, "%s: revoked at Clerk (status %s)\n", r.SessionID, dash(r.Status))
	if r.DeniedLocally {
		fmt.Fprintf(c.stdout, "%s: denied locally by %s until %s\n", r.SessionID, r.Admin, dash(r.DeniedUntil))
	}
	return exitOK
}
