// Package metrics exposes mohd's state to Prometheus: playback, output
// level, watchdog faults and recoveries, library size, disk, uploads, HTTP
// requests and the MQTT link. Player values are read at scrape time, so a
// scrape always sees the same numbers as /api/v1/status.
package metrics
