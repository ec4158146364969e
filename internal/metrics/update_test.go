package metrics

import "testing"

type fakeUpdate struct {
	phase string
	rolls uint64
}

func (f fakeUpdate) Phase() string     { return f.phase }
func (f fakeUpdate) Phases() []string  { return []string{"idle", "trial", "rollback"} }
func (f fakeUpdate) Rollbacks() uint64 { return f.rolls }

func TestUpdateCollector(t *testing.T) {
	m := New(Options{Version: "x"})
	m.Registry().MustRegister(NewUpdateCollector(fakeUpdate{phase: "rollback", rolls: 2}))
	mf, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	phases, rolls := map[string]float64{}, -1.0
	for _, f := range mf {
		switch f.GetName() {
		case "moh_update_phase":
			for _, s := range f.Metric {
				phases[s.Label[0].GetValue()] = s.Gauge.GetValue()
			}
		case "moh_update_rollbacks_total":
			rolls = f.Metric[0].Counter.GetValue()
		}
	}
	if len(phases) != 3 || phases["rollback"] != 1 || phases["idle"] != 0 || phases["trial"] != 0 {
		t.Errorf("moh_update_phase %v: want every phase, rollback 1", phases)
	}
	if rolls != 2 {
		t.Errorf("moh_update_rollbacks_total %v, want 2", rolls)
	}
}
