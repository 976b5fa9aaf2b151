package event_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/intakehq/intake/event"
)

func TestClassOf(t *testing.T) {
	base := errors.New("connection refused")
	for _, tc := range []struct {
		name string
		err  error
		want event.Class
	}{
		{"plain", base, event.Transient},
		{"nil", nil, event.Transient},
		{"permanent", event.WithClass(base, event.Permanent), event.Permanent},
		{"infrastructure", event.WithClass(base, event.Infrastructure), event.Infrastructure},
		{"wrapped", fmt.Errorf("ledger: %w", event.WithClass(base, event.Infrastructure)), event.Infrastructure},
		{"the outer mark wins", event.WithClass(event.WithClass(base, event.Infrastructure), event.Permanent), event.Permanent},
		{"joined: the first that says", errors.Join(base, event.WithClass(base, event.Permanent)), event.Permanent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, event.ClassOf(tc.err))
		})
	}
	assert.ErrorIs(t, event.WithClass(base, event.Permanent), base)
	assert.Nil(t, event.WithClass(nil, event.Permanent))
}

func TestClassText(t *testing.T) {
	for _, c := range []event.Class{event.Transient, event.Permanent, event.Infrastructure} {
		b, err := c.MarshalText()
		assert.NoError(t, err)
		var back event.Class
		assert.NoError(t, back.UnmarshalText(b))
		assert.Equal(t, c, back)
	}
	var c event.Class
	assert.Error(t, c.UnmarshalText([]byte("fatal")))
	_, err := event.Class(9).MarshalText()
	assert.Error(t, err)
}
