package aof_test

import (
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"
)

// TestExampleErrorsImportsOnlyAof: Example_errors appends, reads, follows,
// truncates and handles every error with nothing imported but aof and the
// standard library (issue 12: one import for users).
func TestExampleErrorsImportsOnlyAof(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "example_errors_test.go", nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	var aof bool
	for _, im := range f.Imports {
		path, err := strconv.Unquote(im.Path.Value)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case path == "github.com/aof2/aof2/aof":
			aof = true
		case strings.Contains(strings.Split(path, "/")[0], "."):
			t.Errorf("example_errors_test.go imports %s: only aof and the standard library are allowed", path)
		}
	}
	if !aof {
		t.Error("example_errors_test.go does not import aof")
	}
}
