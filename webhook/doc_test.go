package webhook

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The package doc names every Scheme constructor, and the count of
// providers it gives is the one the README and the guides give: adding a
// provider without saying so fails here.
func TestPackageDocNamesEveryScheme(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var ctors []string
	var pkgDoc string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		if f.Doc != nil {
			pkgDoc += f.Doc.Text()
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Recv != nil || !fd.Name.IsExported() || fd.Type.Results == nil || len(fd.Type.Results.List) != 1 {
				continue
			}
			res := fd.Type.Results.List[0].Type
			if star, ok := res.(*ast.StarExpr); ok {
				res = star.X
			}
			if id, ok := res.(*ast.Ident); ok && id.Name == "Scheme" {
				ctors = append(ctors, fd.Name.Name)
			}
		}
	}
	slices.Sort(ctors)
	t.Logf("%d constructors: %v", len(ctors), ctors)
	if len(ctors) < 20 {
		t.Fatalf("found only %d Scheme constructors: %v", len(ctors), ctors)
	}
	for _, c := range ctors {
		if !strings.Contains(pkgDoc, "["+c+"]") {
			t.Errorf("the package doc does not name [%s]", c)
		}
	}
	providers := len(ctors) - 1 // HMAC verifies any provider: not one of them
	word := numberWords[providers]
	if word == "" {
		t.Fatalf("%d providers: add its word to numberWords", providers)
	}
	if !strings.Contains(strings.ToLower(pkgDoc), word+" providers") {
		t.Errorf("the package doc does not say %q providers", word)
	}
	for _, doc := range []string{"../README.md", "../docs/webhooks.md", "../docs/design.md", "../docs/development.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ToLower(string(b))
		if !strings.Contains(text, word+" providers") && !strings.Contains(text, strconv.Itoa(providers)+" providers") {
			t.Errorf("%s does not give the count of providers (%s, %d)", doc, word, providers)
		}
	}
}

var numberWords = map[int]string{20: "twenty", 21: "twenty-one", 22: "twenty-two", 23: "twenty-three", 24: "twenty-four", 25: "twenty-five", 26: "twenty-six", 27: "twenty-seven", 28: "twenty-eight", 29: "twenty-nine", 30: "thirty"}
