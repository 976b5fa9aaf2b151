package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// cliName is the CLI's name of each webhook scheme constructor whose
// name differs from it lowercased.
var cliName = map[string]string{"MicrosoftGraph": "graph", "StandardWebhooks": "standard"}

// sendOnly are the notification-only schemes: send signs them, but the
// relay cannot receive them (they store nothing without the poller the
// program pairs them with).
var sendOnly = map[string]bool{"dropbox": true, "googlechannel": true}

// Issue #34, item 12: every scheme the webhook package verifies (each
// exported constructor returning a *webhook.Scheme) is one send signs,
// and one the relay receives unless it is notification-only.
func TestEveryWebhookSchemeOnTheCommandLine(t *testing.T) {
	files, err := filepath.Glob("../../webhook/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("the webhook package's files: %v", err)
	}
	fset := token.NewFileSet()
	var constructors []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !fn.Name.IsExported() || fn.Type.Results == nil || len(fn.Type.Results.List) != 1 {
				continue
			}
			if star, ok := fn.Type.Results.List[0].Type.(*ast.StarExpr); ok {
				if id, ok := star.X.(*ast.Ident); ok && id.Name == "Scheme" {
					constructors = append(constructors, fn.Name.Name)
				}
			}
		}
	}
	if len(constructors) < 20 {
		t.Fatalf("found only %d scheme constructors: %v", len(constructors), constructors)
	}
	for _, c := range constructors {
		name := cliName[c]
		if name == "" {
			name = strings.ToLower(c)
		}
		if _, err := lookup(name); err != nil {
			t.Errorf("webhook.%s: no CLI scheme %q (send --scheme %s fails)", c, name, name)
			continue
		}
		if _, err := receiver(name, cliSecrets(t)[name][1]); (err == nil) == sendOnly[name] {
			t.Errorf("relay --source x:%s: %v (notification-only: %v)", name, err, sendOnly[name])
		}
	}
}
