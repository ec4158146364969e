package fleet

import "testing"

// TestChangeKeySeesUpdatePhase: each step of a system update must reach
// the retained status at once, since mohctl update waits on it; before,
// a box's "good" or "rollback" stayed unpublished for up to 60 s.
func TestChangeKeySeesUpdatePhase(t *testing.T) {
	base := `{"state":"playing","version":"2.0","system":{"update":{"update":"rauc","phase":"trial","progress":0}}}`
	for _, other := range []string{
		`{"state":"playing","version":"2.0","system":{"update":{"update":"rauc","phase":"good","progress":0}}}`,
		`{"state":"playing","version":"2.0","system":{"update":{"update":"rauc","phase":"trial","progress":40}}}`,
	} {
		if changeKey([]byte(other)) == changeKey([]byte(base)) {
			t.Errorf("%s: same key as %s", other, base)
		}
	}
}

func TestUpdateWithoutUpdateOps(t *testing.T) {
	m := &commander{a: &Agent{o: AgentOptions{Ops: newFakeOps()}}}
	r := m.update(t.Context(), Command{Op: OpUpdate, URL: "https://x/b", SHA256: "00"})
	if r.Error == nil || r.Error.Code != CodeUpdateOff {
		t.Fatalf("reply %+v, want %s", r, CodeUpdateOff)
	}
}
