package postgres_test

import (
	"testing"

	"github.com/intakehq/intake/budget"
	"github.com/intakehq/intake/budget/budgettest"
)

func TestBudgetConformance(t *testing.T) {
	pool := testPool(t)
	budgettest.Run(t, func(t *testing.T) budget.Store {
		return newBackend(t, pool, testPrefix(t, pool)).Budgets()
	})
}
