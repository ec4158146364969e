package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mohproject/moh/fleet/exporter"
)

// exporterCmd is `mohctl exporter`: a long-running Prometheus exporter
// for the whole fleet, fed by the boxes' retained status on the broker
// (see fleet/exporter). It needs no inventory: every box that publishes a
// status shows up.
type exporterCmd struct {
	Listen     string        `default:":9790" placeholder:"ADDR" help:"Where to serve /metrics (default ${default})."`
	StaleAfter time.Duration `default:"3m" placeholder:"D" help:"A box unheard this long counts as down even if the broker still says online (default ${default}; boxes publish at least every 60 s)."`
}

func (x *exporterCmd) run(ctx context.Context, c *cli) (int, error) {
	if c.via == "" {
		return exitUsage, fmt.Errorf("%w: exporter needs --via mqtts://broker:8883 and the exporter's --ca, --cert and --key", errUsage)
	}
	log := slog.New(slog.NewTextHandler(c.stderr, nil))
	e, err := exporter.New(exporter.Options{
		BrokerURL: c.via, CAFile: c.ca, CertFile: c.cert, KeyFile: c.key,
		Logger: log, StaleAfter: x.StaleAfter,
	})
	if err != nil {
		return exitFailed, err
	}
	ln, err := net.Listen("tcp", x.Listen)
	if err != nil {
		return exitFailed, fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           e.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// A scrape of thousands of boxes is many megabytes to a slow
		// Prometheus; it is cut off only well past any scrape timeout.
		WriteTimeout: 2 * time.Minute,
		IdleTimeout:  2 * time.Minute,
	}
	log.Info("fleet exporter serving metrics", "addr", ln.Addr().String(), "path", "/metrics")
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return e.Run(gctx) })
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve metrics: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	if err := g.Wait(); err != nil {
		return exitFailed, err
	}
	return exitOK, nil
}
