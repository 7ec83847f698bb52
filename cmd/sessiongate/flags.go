package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sessiongate/sessiongate/config"
)

// parseArgs parses the flags of fs placed anywhere among args (before,
// between or after the positional arguments: `verify TOKEN --config f`)
// and returns the positional arguments in order. "--" ends the flags; a
// lone "-" is positional (verify's stdin). With -h, -help or --help before
// any "--", it prints fs.Usage on stdout and returns flag.ErrHelp; other
// errors have been printed on fs's output (stderr).
func parseArgs(fs *flag.FlagSet, args []string, stdout io.Writer) ([]string, error) {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" {
			out := fs.Output()
			fs.SetOutput(stdout)
			fs.Usage()
			fs.SetOutput(out)
			return nil, flag.ErrHelp
		}
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// exitCode is the exit status for an error of parseArgs: 0 for help, 2
// (usage) otherwise.
func parseExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

// usageFunc sets fs.Usage to print the synopsis, a description, and the
// flags with their defaults.
func usageFunc(fs *flag.FlagSet, synopsis, description string) {
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: %s\n\n%s\n", synopsis, strings.TrimSpace(description))
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintf(w, "\nFlags (before or after the arguments):\n")
			fs.PrintDefaults()
		}
	}
}

// nothingToServe reports whether a bare `sessiongate` has no configuration
// at all: no file (SESSIONGATE_CONFIG) and none of the environment
// variables Load reads. Then it prints the usage rather than a
// configuration error about the upstream; with any of them set, a bare
// `sessiongate` serves (containers and unit files rely on that).
func nothingToServe(lookup func(string) (string, bool)) bool {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	for _, name := range config.EnvVars() {
		if v, ok := lookup(name); ok && v != "" {
			return false
		}
	}
	return true
}
