// Package deploy holds moh's operations files: Prometheus alert rules
// and their tests (prometheus/), the fleet's Grafana dashboard
// (grafana/) and example systemd units (systemd/). Its Go code only
// checks them: that the rules fire when they should and not otherwise,
// and that the rules and the dashboard name only metrics moh serves.
package deploy
