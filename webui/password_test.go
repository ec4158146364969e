package webui

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestPasswordPolicy(t *testing.T) {
	const code = "ABCDE-FGHJK-MNPQR"
	names := []string{"pbx-paris-01", "moh-3fa2b1c4d5e6"}
	for _, tc := range []struct {
		pw, want string // want: "" accepted, else in the reason
	}{
		{"correct horse battery", ""},
		{"a new admin password", ""},
		{"flood test password", ""},
		{"Zq7#mLp2vX", ""},
		{"tr0ub4dor&3", ""},
		{"short", "too short"},
		{"password", "too short"},
		{"ninechars", "too short"},
		{"password12", "too common"},
		{"Password!!", "too common"},
		{"P@ssw0rd2024", "too common"},
		{"passw0rd99", "too common"},
		{"administrator1", "too common"},
		{"mohmohmoh1", "too common"},
		{"Moh-Admin-2024", "too common"},
		{"musiconhold!", "too common"},
		{"qwerty123456", "too common"},
		{"00000000000", "too simple"},
		{"abababababab", "too simple"},
		{"1234567890", "too simple"},
		{"abcdefghijkl", "too simple"},
		{"9876543210", "too simple"},
		{"abcdefghjkmnpqr", "setup code"},
		{"my ABCDE-FGHJK-MNPQR", "setup code"},
		{"PBX-Paris-01!!", "own name"},
		{"pbxparis01-2024", "own name"},
		{"moh-3fa2b1c4d5e6", "own name"},
		{"pbx-paris-01 is where the phones ring", ""},
		{strings.Repeat("x", 1025), "too long"},
		{"caf\xe9 au lait pour moi", "UTF-8"},
	} {
		err := CheckPasswordPolicy(tc.pw, code, names...)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q refused: %v", tc.pw, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: %v; want refused with %q", tc.pw, err, tc.want)
		}
	}
	// Without a setup code or names only the general rules apply.
	if err := CheckPasswordPolicy("pbx-paris-01", ""); err != nil {
		t.Errorf("a host name is refused when nobody said it was this box's: %v", err)
	}
}

// TestSetupRefusesItsOwnCode: the setup code is printed in the log; the
// setup page must not accept it as the admin password.
func TestSetupRefusesItsOwnCode(t *testing.T) {
	e := newEnv(t, envOpts{})
	code := e.srv.SetupCode()
	c := noRedirect(newJar())
	_, page := e.do(c, "GET", "/setup", nil, nil)
	tok := string(hiddenCSRF.FindSubmatch(page)[1])
	for _, pw := range []string{code, strings.ToLower(code) + "!", "password1234"} {
		f := url.Values{"code": {code}, "password": {pw}, "confirm": {pw}, "csrf": {tok}}
		resp, body := e.do(c, "POST", "/setup", strings.NewReader(f.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "not acceptable") {
			t.Errorf("setup with %q: %d %.300s", pw, resp.StatusCode, body)
		}
	}
	if set, _ := PasswordSet(e.dir); set {
		t.Fatal("a refused password was stored")
	}
}
