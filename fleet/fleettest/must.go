package fleettest

import (
	"crypto/x509"
	"os"
	"testing"

	"github.com/mohproject/moh/internal/fleetca"
)

// MustCA is NewCA for a test or benchmark: a failure ends it, so the
// dozens of tests that need a CA do not each spell out the error check.
func MustCA(t testing.TB, dir string) *CA {
	t.Helper()
	ca, err := NewCA(dir)
	if err != nil {
		t.Fatalf("test CA: %v", err)
	}
	return ca
}

// MustIssue is Issue for a test or benchmark.
func (ca *CA) MustIssue(t testing.TB, cn string, server bool) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile, err := ca.Issue(cn, server)
	if err != nil {
		t.Fatalf("issue %s: %v", cn, err)
	}
	return certFile, keyFile
}

// MustBroker is StartBroker for a test or benchmark: the broker is
// stopped when it ends, and a failing test logs the tail of what
// mosquitto printed (why a client was refused or dropped).
func MustBroker(t testing.TB, dir string, ca *CA, acl string) *Broker {
	t.Helper()
	b, err := StartBroker(dir, ca, acl)
	return stopAtEnd(t, b, err)
}

// MustBrokerFiles is StartBrokerFiles for a test or benchmark, stopped
// and logged as MustBroker's.
func MustBrokerFiles(t testing.TB, dir string, f BrokerFiles) *Broker {
	t.Helper()
	b, err := StartBrokerFiles(dir, f)
	return stopAtEnd(t, b, err)
}

func stopAtEnd(t testing.TB, b *Broker, err error) *Broker {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.Stop()
		if t.Failed() {
			l := b.Log()
			if len(l) > 4000 {
				l = "…" + l[len(l)-4000:]
			}
			t.Logf("mosquitto log (tail):\n%s", l)
		}
	})
	return b
}

// LeafOf reads the first certificate in the PEM file (a box's pair
// holds the certificate before its key); a failure ends the test.
func LeafOf(t testing.TB, file string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	c, err := fleetca.ParseCert(b)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return c
}
