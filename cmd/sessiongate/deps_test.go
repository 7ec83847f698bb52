package main

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestBinaryDoesNotLinkTheTestFramework: dev mode runs the fake Clerk
// (clerktest), which must not pull the testing package (its flags, its
// code) into the production binary.
func TestBinaryDoesNotLinkTheTestFramework(t *testing.T) {
	t.Parallel()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(goBin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	for _, bad := range []string{"testing", "testing/iotest", "net/http/httptest"} {
		if slices.Contains(deps, bad) {
			t.Errorf("cmd/sessiongate links %s", bad)
		}
	}
}
