package fleet

// The programme commands: a schedule for a group, an emergency override
// and its end, the same operations as PUT /api/v1/schedule and
// PUT/DELETE /api/v1/override.

import (
	"errors"

	"github.com/mohproject/moh/internal/programme"
)

// Programme operations.
const (
	OpSchedule      = "schedule"
	OpOverride      = "override"
	OpOverrideClear = "override_clear"
)

// ProgrammeOps is what a box with a programme adds to Ops. A box whose
// Ops lack it answers the programme commands as unknown.
type ProgrammeOps interface {
	SetSchedule(s programme.Schedule) error
	SetOverride(o programme.Override) error
	ClearOverride() error
}

// execProgramme runs a programme command; ok is false when cmd is not
// one.
func (m *commander) execProgramme(cmd Command) (Reply, bool) {
	switch cmd.Op {
	case OpSchedule, OpOverride, OpOverrideClear:
	default:
		return Reply{}, false
	}
	ops, ok := m.a.o.Ops.(ProgrammeOps)
	if !ok {
		return fail(CodeBadRequest, "this box has no programme"), true
	}
	var err error
	switch cmd.Op {
	case OpSchedule:
		if cmd.Schedule == nil {
			return fail(CodeBadRequest, "schedule is required"), true
		}
		err = ops.SetSchedule(*cmd.Schedule)
	case OpOverride:
		if cmd.Override == nil {
			return fail(CodeBadRequest, "override is required"), true
		}
		err = ops.SetOverride(*cmd.Override)
	case OpOverrideClear:
		err = ops.ClearOverride()
	}
	if err != nil {
		var pe *programme.Error
		if errors.As(err, &pe) {
			return fail(pe.Code, pe.Message), true
		}
		return fail(CodeFailed, err.Error()), true
	}
	return okResult(nil), true
}
