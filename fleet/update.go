package fleet

import (
	"context"

	"github.com/mohproject/moh/internal/sysupdate"
)

// UpdateOps is what a box that can update its system offers beside Ops
// (mohd's adapter implements it; a box without it answers OpUpdate
// with update_off).
type UpdateOps interface {
	// Update fetches, verifies and starts installing a bundle, as
	// POST /api/v1/system/update with a URL does.
	Update(ctx context.Context, url, sha256, reboot string) (sysupdate.Status, error)
}

// Reply codes of OpUpdate, the same as the HTTP API's.
const (
	CodeUpdateOff     = sysupdate.CodeOff
	CodeUpdateRunning = sysupdate.CodeRunning
	CodeDiskFull      = sysupdate.CodeDiskFull
)

// update runs OpUpdate. The reply comes once the bundle is verified (or
// refused) and the install has begun; its progress and the result after
// the reboot are in the retained status (system.update).
func (m *commander) update(ctx context.Context, cmd Command) Reply {
	u, ok := m.a.o.Ops.(UpdateOps)
	if !ok {
		return fail(CodeUpdateOff, "this box cannot update its system")
	}
	if cmd.URL == "" || cmd.SHA256 == "" {
		return fail(CodeBadRequest, "url and sha256 are required")
	}
	ctx, cancel := context.WithDeadline(ctx, cmd.Expires)
	defer cancel()
	st, err := u.Update(ctx, cmd.URL, cmd.SHA256, cmd.Reboot)
	if err != nil {
		return updateFailure(err)
	}
	return okResult(st)
}

func updateFailure(err error) Reply {
	if code, msg, ok := sysupdate.Explain(err); ok {
		return fail(code, msg)
	}
	return fail(CodeFailed, err.Error())
}
