package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/intakehq/intake/budget"
	"github.com/intakehq/intake/budget/budgettest"
)

func TestBudgetConformance(t *testing.T) {
	budgettest.Run(t, func(t *testing.T) budget.Store {
		return open(t, filepath.Join(t.TempDir(), "budget.db")).Budgets()
	})
}
