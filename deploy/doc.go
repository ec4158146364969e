// Package deploy holds moh's operations files: Prometheus alert rules
// and their tests (prometheus/), the fleet's Grafana dashboard
// (grafana/), example systemd units (systemd/) and the central syslog
// collector's rsyslog config (rsyslog/). Its Go code only checks them:
// that the rules fire when they should and not otherwise, that the rules
// and the dashboard name only metrics moh serves, and that the rsyslog
// config takes a box's TLS messages in a real rsyslogd.
package deploy
