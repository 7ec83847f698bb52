package deploy_test

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// dockerBuild is the `go build` command of deploy/Dockerfile's build stage.
type dockerBuild struct {
	env   []string // NAME=value before `go`
	flags []string // between `build` and the package, -o and its value removed
	pkg   string
}

// parseDockerfileBuild reads the RUN instruction that runs `go build` (its
// continuation lines joined) and splits it as a shell would (words, double
// and single quotes), with ${VERSION} replaced by version.
func parseDockerfileBuild(t testing.TB, version string) dockerBuild {
	t.Helper()
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var run string
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		if !strings.HasPrefix(strings.TrimSpace(lines[i]), "RUN ") {
			continue
		}
		instr := ""
		for ; i < len(lines); i++ {
			l := strings.TrimSpace(lines[i])
			cont := strings.HasSuffix(l, "\\")
			instr += " " + strings.TrimSuffix(l, "\\")
			if !cont {
				break
			}
		}
		if strings.Contains(instr, "go build") {
			if run != "" {
				t.Fatal("the Dockerfile has two RUN instructions with go build")
			}
			run = instr
		}
	}
	if run == "" {
		t.Fatal("no RUN instruction with go build in the Dockerfile")
	}
	words := shellWords(t, strings.ReplaceAll(run, "${VERSION}", version))
	var b dockerBuild
	i := 0
	for ; i < len(words) && words[i] != "go"; i++ {
		if w := words[i]; regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=`).MatchString(w) {
			b.env = append(b.env, w)
		}
	}
	if i+1 >= len(words) || words[i+1] != "build" {
		t.Fatalf("no `go build` in %q", run)
	}
	for i += 2; i < len(words); i++ {
		switch w := words[i]; {
		case w == "-o":
			i++ // the output path is the test's
		case strings.HasPrefix(w, "-"):
			b.flags = append(b.flags, w)
			if (w == "-ldflags" || w == "-tags" || w == "-gcflags") && i+1 < len(words) {
				i++
				b.flags = append(b.flags, words[i])
			}
		default:
			b.pkg = w
		}
	}
	return b
}

// shellWords splits s into words with shell quoting (no expansions).
func shellWords(t testing.TB, s string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	in, quote := false, byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '"' || c == '\'':
			quote, in = c, true
		case c == ' ' || c == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if quote != 0 {
		t.Fatalf("unterminated quote in %q", s)
	}
	if in {
		words = append(words, cur.String())
	}
	return words
}

var (
	dockerBinaryOnce sync.Once
	dockerBinaryPath string
	dockerBinaryErr  error
	dockerBinaryDir  string
)

// testVersion is what the tests stamp as the Dockerfile's VERSION.
const testVersion = "v0.0.0-dockerfile-test"

// buildLikeDockerfile builds ./cmd/sessiongate once per test binary with
// the Dockerfile's environment and flags.
func buildLikeDockerfile(t testing.TB) string {
	t.Helper()
	b := parseDockerfileBuild(t, testVersion)
	dockerBinaryOnce.Do(func() {
		dockerBinaryDir, dockerBinaryErr = os.MkdirTemp("", "sessiongate-docker")
		if dockerBinaryErr != nil {
			return
		}
		dockerBinaryPath = filepath.Join(dockerBinaryDir, "sessiongate")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		args := append(append([]string{"build"}, b.flags...), "-o", dockerBinaryPath, b.pkg)
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = ".." // the Dockerfile builds from the repository root
		cmd.Env = append(os.Environ(), b.env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			dockerBinaryErr = &buildError{args: args, out: string(out), err: err}
		}
	})
	if dockerBinaryErr != nil {
		t.Fatal(dockerBinaryErr)
	}
	return dockerBinaryPath
}

type buildError struct {
	args []string
	out  string
	err  error
}

func (e *buildError) Error() string {
	return "go " + strings.Join(e.args, " ") + ": " + e.err.Error() + "\n" + e.out
}

func TestMain(m *testing.M) {
	code := m.Run()
	if dockerBinaryDir != "" {
		os.RemoveAll(dockerBinaryDir)
	}
	os.Exit(code)
}

// TestDockerfileBuildsAStaticBinary builds the binary with the Dockerfile's
// own flags (read from it, so they cannot drift) and checks what the
// distroless image needs: a static executable (no ELF interpreter, no
// shared library), built without cgo and with -trimpath, whose `version`
// prints the VERSION build argument.
func TestDockerfileBuildsAStaticBinary(t *testing.T) {
	t.Parallel()
	b := parseDockerfileBuild(t, testVersion)
	if !strings.Contains(strings.Join(b.env, " "), "CGO_ENABLED=0") {
		t.Errorf("the Dockerfile's go build does not set CGO_ENABLED=0: %v", b.env)
	}
	if b.pkg != "./cmd/sessiongate" {
		t.Errorf("the Dockerfile builds %q, want ./cmd/sessiongate", b.pkg)
	}
	bin := buildLikeDockerfile(t)

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has a PT_INTERP program header: it is dynamically linked")
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil {
		t.Fatal(err)
	} else if len(libs) > 0 {
		t.Errorf("the binary needs shared libraries (DT_NEEDED): %v", libs)
	}

	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
		t.Errorf("build settings CGO_ENABLED=%q -trimpath=%q, want 0 and true", settings["CGO_ENABLED"], settings["-trimpath"])
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "version")
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("version: %v", err)
	}
	if !strings.HasPrefix(out.String(), "sessiongate "+testVersion+" ") || !strings.Contains(out.String(), info.GoVersion) {
		t.Errorf("version printed %q, want %q and the Go version %s", out.String(), "sessiongate "+testVersion, info.GoVersion)
	}
}
