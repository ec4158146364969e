package fleet

import (
	"testing"

	"github.com/mohproject/moh/fleet/fleettest"
)

func newOtherCA(t *testing.T) ([2]string, error) {
	ca, err := fleettest.NewCA(t.TempDir())
	if err != nil {
		return [2]string{}, err
	}
	c, k, err := ca.Issue("box-a", false)
	return [2]string{c, k}, err
}
