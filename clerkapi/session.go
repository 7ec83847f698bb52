package clerkapi

import "encoding/json"

// SessionStatus is a Session's status.
type SessionStatus string

// The statuses of the spec's Session schema. Only StatusActive is signed in;
// StatusPending is signed in with tasks left (see Session.Tasks).
const (
	StatusActive    SessionStatus = "active"
	StatusRevoked   SessionStatus = "revoked"
	StatusEnded     SessionStatus = "ended"
	StatusExpired   SessionStatus = "expired"
	StatusRemoved   SessionStatus = "removed"
	StatusAbandoned SessionStatus = "abandoned"
	StatusReplaced  SessionStatus = "replaced"
	StatusPending   SessionStatus = "pending"
)

// Known reports whether s is one of the statuses above. Clerk may add
// statuses; a caller that gates on a session MUST treat an unknown one as
// not signed in.
func (s SessionStatus) Known() bool {
	switch s {
	case StatusActive, StatusRevoked, StatusEnded, StatusExpired, StatusRemoved,
		StatusAbandoned, StatusReplaced, StatusPending:
		return true
	}
	return false
}

// Session mirrors the spec's Session schema. Unknown fields are ignored:
// although the schema says additionalProperties: false, Clerk adds fields
// over time.
//
// The timestamps are Unix times whose unit the spec does not state; Clerk
// sends milliseconds in practice (time.UnixMilli reads them).
type Session struct {
	// Object is "session".
	Object string `json:"object"`
	// ID is the session ID, "sess_…".
	ID string `json:"id"`
	// UserID is the user's ID, "user_…".
	UserID string `json:"user_id"`
	// ClientID is the client's (browser's) ID, "client_…".
	ClientID string `json:"client_id"`
	// Actor is the impersonation actor object as sent, nil when null or
	// absent.
	Actor json.RawMessage `json:"actor"`
	// Status is the session's status.
	Status SessionStatus `json:"status"`
	// LastActiveOrganizationID is the active organization's ID, nil when
	// none.
	LastActiveOrganizationID *string `json:"last_active_organization_id"`
	// LastActiveAt is when the session was last active (Unix, ms).
	LastActiveAt int64 `json:"last_active_at"`
	// LatestActivity describes the latest client activity, nil when absent.
	LatestActivity *SessionActivity `json:"latest_activity,omitempty"`
	// ExpireAt is when the session expires (Unix, ms).
	ExpireAt int64 `json:"expire_at"`
	// AbandonAt is when the session is abandoned (Unix, ms).
	AbandonAt int64 `json:"abandon_at"`
	// UpdatedAt is the last update (Unix, ms).
	UpdatedAt int64 `json:"updated_at"`
	// CreatedAt is the creation (Unix, ms).
	CreatedAt int64 `json:"created_at"`
	// Tasks are the tasks left before a pending session becomes active; nil
	// when null or absent.
	Tasks []SessionTask `json:"tasks,omitempty"`
}

// UnmarshalJSON decodes leniently and turns a null actor into nil.
func (s *Session) UnmarshalJSON(b []byte) error {
	type plain Session
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	if string(p.Actor) == "null" {
		p.Actor = nil
	}
	*s = Session(p)
	return nil
}

// SessionActivity mirrors the spec's SessionActivityResponse.
type SessionActivity struct {
	// Object is the object type, "session_activity".
	Object string `json:"object"`
	// ID is the activity's ID.
	ID string `json:"id"`
	// DeviceType is e.g. "Macintosh".
	DeviceType string `json:"device_type,omitempty"`
	// IsMobile reports a mobile device.
	IsMobile bool `json:"is_mobile"`
	// BrowserName is e.g. "Chrome".
	BrowserName string `json:"browser_name,omitempty"`
	// BrowserVersion is the browser's version.
	BrowserVersion string `json:"browser_version,omitempty"`
	// IPAddress is the client's IP address.
	IPAddress string `json:"ip_address,omitempty"`
	// City is the IP's city.
	City string `json:"city,omitempty"`
	// Country is the IP's country.
	Country string `json:"country,omitempty"`
}

// SessionTask is a task a pending session must complete.
type SessionTask struct {
	// Key names the task, e.g. "choose-organization".
	Key string `json:"key"`
}

// SessionList is a page of sessions.
type SessionList struct {
	// Data holds the sessions, newest first.
	Data []Session `json:"data"`
	// TotalCount is the number of sessions matching the filter across all
	// pages. It is meaningful only when Paginated.
	TotalCount int64 `json:"total_count"`
	// Paginated reports that Clerk answered {"data","total_count"} rather
	// than the spec's plain array.
	Paginated bool `json:"-"`
}

// Token is a session token minted by Client.CreateToken.
type Token struct {
	// Object is "token".
	Object string `json:"object"`
	// JWT is the signed token. It is a credential: do not log it.
	JWT string `json:"jwt"`
}
