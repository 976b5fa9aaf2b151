package redis_test

import (
	"testing"

	intakeredis "github.com/intakehq/intake/backend/redis"
	"github.com/intakehq/intake/budget"
	"github.com/intakehq/intake/budget/budgettest"
)

func TestBudgetConformance(t *testing.T) {
	c := testClient(t)
	budgettest.Run(t, func(t *testing.T) budget.Store {
		return intakeredis.New(c, intakeredis.WithPrefix(testPrefix(t, c))).Budgets()
	})
}
