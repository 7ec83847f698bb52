// Package buildinfo says which build of sessiongate is running: what
// `sessiongate version` prints and what the sessiongate_build_info metric
// exports, from one source.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// VersionVar is the -X linker flag path that stamps a version at build time,
// as the Dockerfile does:
//
//	go build -ldflags "-X github.com/sessiongate/sessiongate/internal/buildinfo.version=v1.2.3"
const VersionVar = "github.com/sessiongate/sessiongate/internal/buildinfo.version"

// version is set by the linker (VersionVar); empty otherwise.
var version = ""

// Info describes the running build.
type Info struct {
	// Version is the stamped version, else the main module's version from
	// the build info (v1.2.3 for `go install …@v1.2.3`, a pseudo-version
	// for a commit), else "(devel)".
	Version string
	// Revision is the VCS commit the binary was built from, when the build
	// recorded one (a build inside a git checkout); Modified reports
	// uncommitted changes in it.
	Revision string
	Modified bool
	// GoVersion is the toolchain that built the binary (go1.26.8).
	GoVersion string
}

// Read returns the running build's Info.
func Read() Info {
	info := Info{Version: version, GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if ok {
		if info.Version == "" && bi.Main.Version != "" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Revision = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	if info.Version == "" {
		info.Version = "(devel)"
	}
	return info
}

// String is the version line's text: "v1.2.3", then the revision when known
// ("v1.2.3 (revision 0123abcd…, modified)"), then the Go version.
func (i Info) String() string {
	s := i.Version
	if i.Revision != "" {
		s += " (revision " + i.Revision
		if i.Modified {
			s += ", modified"
		}
		s += ")"
	}
	return s + " " + i.GoVersion
}
