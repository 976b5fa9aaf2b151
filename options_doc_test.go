package intake_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// isOption reports whether fd returns an option: a type whose name ends
// in Option (Option, SubscribeOption, HTTPOption, …).
func isOption(fd *ast.FuncDecl) bool {
	if fd.Type.Results == nil || len(fd.Type.Results.List) != 1 {
		return false
	}
	switch t := fd.Type.Results.List[0].Type.(type) {
	case *ast.Ident:
		return strings.HasSuffix(t.Name, "Option")
	case *ast.SelectorExpr:
		return strings.HasSuffix(t.Sel.Name, "Option")
	}
	return false
}

// Every exported option of every package in the repository (a With…
// function) says its default in its doc comment, as go doc shows it.
func TestEveryOptionSaysItsDefault(t *testing.T) {
	checked := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		if strings.HasSuffix(f.Name.Name, "main") {
			return nil
		}
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Recv != nil || !fd.Name.IsExported() || !strings.HasPrefix(fd.Name.Name, "With") || !isOption(fd) {
				continue
			}
			checked++
			if !strings.Contains(strings.ToLower(fd.Doc.Text()), "default") {
				t.Errorf("%s: %s.%s does not say its default", path, f.Name.Name, fd.Name.Name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 50 {
		t.Fatalf("checked only %d options: is the walk reading the repository?", checked)
	}
	t.Logf("%d options, each with its default", checked)
}
