package middleware

// The organization permission limits, for the external tests.
const (
	MaxOrgPermissionNamesForTest = maxOrgPermissionNames
	MaxOrgMaskDigitsForTest      = maxOrgMaskDigits
	MaxOrgPermissionsForTest     = maxOrgPermissions
)
