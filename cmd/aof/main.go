// Command aof looks at an aof2 log directory without changing it: a table
// of its segments, a full checksum verification, a dump of its records in
// text, hex or JSON, its last records (and new ones as they come), and
// statistics.
//
// Usage:
//
//	aof inspect DIR
//	aof verify DIR
//	aof dump DIR [--from SEQ] [--limit N] [--format text|hex|json]
//	aof tail DIR [-n N] [-f]
//	aof stats DIR
//	aof help [COMMAND]
//
// Every command opens the log read-only: it never writes to DIR, never
// takes DIR/LOCK away from a writer (it does not take the lock at all), and
// works while a writer process appends. Exit status: 0 ok, 1 corruption
// found, 2 usage error, 3 any other error, 4 records dump was printing
// were removed by the writer meanwhile (retention or TruncateBack), 5 a
// segment file was written by a newer aof2 (a format version this build
// does not read: not corruption; use the newer aof2's tool).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/aof2/aof2/inspect"
	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs"
)

// Exit statuses.
const (
	exitOK      = 0
	exitCorrupt = 1
	exitUsage   = 2
	exitError   = 3
	// exitTruncated: records the command was to print were removed
	// while it read (retention, or the writer's TruncateBack); the
	// message says where the log continues.
	exitTruncated = 4
	// exitNewer: a segment file was written by a newer aof2 (a format
	// version this build does not read). Not corruption: the log is
	// fine, this tool is too old for it.
	exitNewer = 5
)

// newerHint follows the message of a file written by a newer aof2.
const newerHint = "  written by a newer aof2: not corruption, this build is too old to read it; use the aof tool of the aof2 version that wrote the log"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// env is what a command runs with.
type env struct {
	ctx    context.Context
	stdout io.Writer
	stderr io.Writer
	fs     vfs.FS
	// term is true when stderr is a terminal (progress bars go there).
	term bool
	// tail -f looks at the log every pollMin while records come and for
	// pollHot after the last one, then backs off, doubling, to pollMax.
	pollMin, pollHot, pollMax time.Duration
}

// command is one subcommand.
type command struct {
	name    string
	args    string // synopsis after the name
	summary string // one line
	detail  string // paragraphs for --help
	// flags defines the command's flags on fs and returns the function
	// that runs it with the positional arguments.
	flags func(fs *flag.FlagSet) func(e *env, args []string) int
}

func commands() []command {
	return []command{inspectCommand(), verifyCommand(), dumpCommand(), tailCommand(), statsCommand()}
}

// run runs the command line args (without the program name) and returns
// the exit status. ctx ends tail -f.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runFS(ctx, vfs.Default, args, stdout, stderr)
}

// runFS is run reading the log through fsys (tests act between the
// tool's steps with it).
func runFS(ctx context.Context, fsys vfs.FS, args []string, stdout, stderr io.Writer) int {
	e := &env{ctx: ctx, stdout: stdout, stderr: stderr, fs: fsys, term: isTerminal(stderr),
		pollMin: time.Millisecond, pollHot: 200 * time.Millisecond, pollMax: 100 * time.Millisecond}
	return e.run(args)
}

func (e *env) run(args []string) int {
	if len(args) == 0 {
		usage(e.stderr)
		return exitUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if name == "help" && len(rest) > 0 {
			c, ok := lookup(rest[0])
			if !ok {
				fmt.Fprintf(e.stderr, "aof help: unknown command %q; the commands are %s\n", rest[0], names())
				return exitUsage
			}
			newFlagSet(c, e.stdout)
			return exitOK
		}
		usage(e.stdout)
		return exitOK
	}
	c, ok := lookup(name)
	if !ok {
		fmt.Fprintf(e.stderr, "aof: unknown command %q; the commands are %s (aof help for more)\n", name, names())
		return exitUsage
	}
	if slices.ContainsFunc(rest, isHelpFlag) {
		newFlagSet(c, e.stdout)
		return exitOK
	}
	fs, runc := newFlagSet(c, nil)
	fs.SetOutput(e.stderr)
	pos, err := parseInterleaved(fs, rest)
	if err != nil {
		return exitUsage // the flag package printed the error and the usage
	}
	if len(pos) != 1 {
		fmt.Fprintf(e.stderr, "aof %s: want exactly one log directory, got %d arguments (%s)\n", c.name, len(pos), strings.Join(pos, " "))
		fmt.Fprintf(e.stderr, "usage: aof %s %s\n", c.name, c.args)
		return exitUsage
	}
	return runc(e, pos)
}

// newFlagSet makes the command's flag set; with help not nil, it prints
// the command's help there.
func newFlagSet(c command, help io.Writer) (*flag.FlagSet, func(*env, []string) int) {
	fs := flag.NewFlagSet("aof "+c.name, flag.ContinueOnError)
	runc := c.flags(fs)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: aof %s %s\n\n%s\n", c.name, c.args, c.detail)
		fmt.Fprintf(w, "\nThe log is opened read-only: nothing in DIR is written, DIR/LOCK is not taken, and a\nwriter may be appending meanwhile. Exit status: 0 ok, 1 corruption found, 2 usage error, 3 other errors,\n4 records being read were removed meanwhile by the writer (retention, TruncateBack),\n5 a segment file was written by a newer aof2 (not corruption).\n")
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintf(w, "\nflags (-name or --name):\n")
			fs.PrintDefaults()
		}
	}
	if help != nil {
		fs.SetOutput(help)
		fs.Usage()
	}
	return fs, runc
}

func isHelpFlag(a string) bool {
	return a == "-h" || a == "-help" || a == "--help" || a == "--h"
}

// parseInterleaved parses flags that may come before or after the
// positional arguments (aof dump DIR --from 5), which package flag alone
// stops at.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func lookup(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func names() string {
	var n []string
	for _, c := range commands() {
		n = append(n, c.name)
	}
	return strings.Join(n, ", ")
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "aof looks at an aof2 log directory without changing it.\n\nusage: aof <command> [flags] DIR\n\ncommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "  %-8s %s\n", "help", "aof help COMMAND, or aof COMMAND --help: a command's flags and output")
	fmt.Fprintf(w, "\nEvery command opens the log read-only: it never writes to DIR, never takes DIR/LOCK,\nand works while a writer appends. Exit status: 0 ok, 1 corruption found, 2 usage error,\n3 other errors, 4 records being read were removed meanwhile by the writer,\n5 a segment file was written by a newer aof2 (not corruption).\n")
}

// openDir lists the log directory, or reports why it cannot (and returns
// the exit status).
func (e *env) openDir(cmd, path string) (*inspect.Dir, int) {
	d, err := inspect.List(e.fs, path)
	if err == nil {
		return d, exitOK
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
		e.errorf(cmd, "%v\n  check the path: give the directory the writer passed to aof.Open", err)
	case errors.Is(err, os.ErrPermission):
		e.errorf(cmd, "%v\n  run as a user that can read the log (the tool only reads)", err)
	default:
		e.errorf(cmd, "%v", err)
	}
	return nil, exitError
}

// errorf prints "aof CMD: message" on stderr.
func (e *env) errorf(cmd, format string, args ...any) {
	fmt.Fprintf(e.stderr, "aof %s: %s\n", cmd, fmt.Sprintf(format, args...))
}

// readErr prints why a Reader stopped, if it matters, and returns the exit
// status: a torn tail is a warning, corruption exits 1, records the
// writer removed while they were read exit 4.
func (e *env) readErr(cmd, dir string, err error) int {
	var trunc *inspect.TruncatedError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &trunc):
		e.errorf(cmd, "%v\n  this is the writer's doing, not corruption; continue with `aof %s %s --from %d`", err, cmd, dir, trunc.Continue())
		return exitTruncated
	case errors.Is(err, inspect.ErrTornTail):
		e.errorf(cmd, "warning: stopped at the end of the written records: %v", err)
		return exitOK
	case errors.Is(err, segment.ErrCorrupt):
		e.errorf(cmd, "%v\n  the records before this point were printed and verify; run `aof verify %s` for a full report", err, dir)
		return exitCorrupt
	case errors.Is(err, segment.ErrUnsupportedVersion):
		e.errorf(cmd, "%v\n%s", err, newerHint)
		return exitNewer
	default:
		e.errorf(cmd, "%v", err)
		return exitError
	}
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
