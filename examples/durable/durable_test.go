package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMain runs the test binary as the receiver when the demonstration
// starts it.
func TestMain(m *testing.M) {
	if db := os.Getenv("INTAKE_DURABLE_DB"); db != "" {
		if err := receive(db, "127.0.0.1:0"); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestDemonstrationLosesNothing(t *testing.T) {
	if err := demonstrate(filepath.Join(t.TempDir(), "intake.db"), 100); err != nil {
		t.Fatal(err)
	}
}
