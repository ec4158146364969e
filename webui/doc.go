// Package webui serves moh's admin surface over HTTP: the server-rendered
// admin page, the /api/v1 JSON API with its OpenAPI spec, /healthz and
// /metrics, and everything that guards them — the admin password, API
// tokens with scopes, sessions, CSRF, login throttling, security headers
// and TLS. It drives a player and a track library through small interfaces
// and knows nothing of how either works.
package webui
