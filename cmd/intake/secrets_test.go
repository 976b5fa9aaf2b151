package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Issue #34, item 10: a relay's webhook secrets need not be on the
// command line (visible in ps): env:VAR reads an environment variable,
// file:PATH a file (one trailing newline dropped, as editors and
// Kubernetes secrets leave one).
func TestRelaySecretFromEnvironmentOrFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "gh.secret")
	if err := os.WriteFile(file, []byte("from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("INTAKE_TEST_GH_SECRET", "from-the-env")
	t.Setenv("INTAKE_TEST_EMPTY", "")
	for _, tc := range []struct {
		spec, secret, err string
	}{
		{"gh:github:plain", "plain", ""},
		{"gh:github:env:INTAKE_TEST_GH_SECRET", "from-the-env", ""},
		{"gh:github:file:" + file, "from-a-file", ""},
		{"gh:github:env:INTAKE_TEST_EMPTY", "", "INTAKE_TEST_EMPTY is empty or unset"},
		{"gh:github:env:INTAKE_TEST_UNSET_X", "", "INTAKE_TEST_UNSET_X is empty or unset"},
		{"gh:github:file:" + filepath.Join(dir, "missing"), "", "no such file"},
		{"gh:github:file:" + empty, "", "is empty"},
	} {
		_, _, secret, err := parseSource(tc.spec)
		if tc.err == "" && (err != nil || secret != tc.secret) {
			t.Errorf("%s: %q, %v; want %q", tc.spec, secret, err, tc.secret)
		}
		if tc.err != "" {
			var u *usageError
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.As(err, &u) {
				t.Errorf("%s: %v; want a command line to fix naming %q", tc.spec, err, tc.err)
			}
		}
	}
}
