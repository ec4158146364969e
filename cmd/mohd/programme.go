package main

// This file wires the programme (playlists, schedule, messages, override)
// between the library and the player.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"
	_ "time/tzdata" // every IANA zone, so a minimal image without /usr/share/zoneinfo can keep a schedule

	"github.com/mohproject/moh/internal/programme"
	"github.com/mohproject/moh/player"
	"github.com/mohproject/moh/uploads"
)

// testMessageUnitEnv makes every_minutes count seconds (or any
// duration) instead of minutes. Only the end-to-end tests set it, so a
// message "every 1 minute" comes every second and a test does not wait
// minutes.
const testMessageUnitEnv = "MOHD_TEST_MESSAGE_UNIT"

func trackIDs(tracks []uploads.Track) []string {
	ids := make([]string, 0, len(tracks))
	for _, t := range tracks {
		ids = append(ids, t.ID)
	}
	return ids
}

// openProgramme loads the programme state (migrating the library order
// to the playlist default on the first start) and builds the engine.
func openProgramme(dataDir string, lib *uploads.Library, p *player.Player, backend player.Backend, events *player.EventLog, log *slog.Logger) (*programme.Store, *programme.Engine, error) {
	known := func(id string) bool { _, ok := lib.Get(id); return ok }
	store, err := programme.Open(dataDir, trackIDs(lib.Tracks()), known)
	if err != nil {
		return nil, nil, fmt.Errorf("programme: %w", err)
	}
	// The library may have changed while mohd was down (files copied in
	// or removed by hand): the playlists follow before anything plays.
	if err := store.SyncAtStart(trackIDs(lib.Tracks())); err != nil {
		log.Warn("programme: could not follow the library", "err", err)
	}
	var unit time.Duration
	if v := os.Getenv(testMessageUnitEnv); v != "" {
		if unit, err = time.ParseDuration(v); err != nil {
			return nil, nil, fmt.Errorf("%s=%s: %w", testMessageUnitEnv, strconv.Quote(v), err)
		}
	}
	eng := programme.NewEngine(programme.EngineOptions{
		Store:       store,
		Tracks:      func() []player.Track { return playlistFrom(lib.Tracks()) },
		SetPlaylist: p.SetPlaylist,
		SwitchNow:   p.SwitchNow,
		OnAir: func() string {
			if t := backend.Status().Track; t != nil {
				return t.ID
			}
			return ""
		},
		Logger:      log,
		MessageUnit: unit,
		OnChange: func(old, new programme.Programme) {
			what := new.Playlist
			if new.Track != "" {
				what = "track " + new.Track
			}
			msg := "now playing " + what + " (" + new.Reason
			if new.Rule != "" {
				msg += ": " + new.Rule
			}
			events.Add(player.Event{Kind: "programme", Message: msg + ")"})
		},
	})
	return store, eng, nil
}

// runProgramme keeps the engine running and the playlists following the
// library: a deleted track leaves every playlist, an upload joins
// default, a reorder through the old playlist API reorders default.
func runProgramme(ctx context.Context, lib *uploads.Library, store *programme.Store, eng *programme.Engine, log *slog.Logger) error {
	go func() {
		prev := trackIDs(lib.Tracks())
		for {
			select {
			case <-ctx.Done():
				return
			case <-lib.Changes():
				order := trackIDs(lib.Tracks())
				if err := store.SyncLibrary(order, prev); err != nil {
					log.Error("programme: playlists could not follow the library", "err", err)
				}
				prev = order
				eng.LibraryChanged()
			}
		}
	}()
	return eng.Run(ctx)
}

// programmeAPI is what the web surface and the fleet agent see of the
// programme.
type programmeAPI struct {
	store *programme.Store
	eng   *programme.Engine
}

func (a programmeAPI) Store() *programme.Store      { return a.store }
func (a programmeAPI) Current() programme.Programme { return a.eng.Programme() }

// SetSchedule, SetOverride and ClearOverride are the fleet's programme
// commands (fleet.ProgrammeOps), the same checks as the HTTP API.
func (o fleetOps) SetSchedule(s programme.Schedule) error {
	if o.prog.store == nil {
		return errNoProgramme
	}
	return o.prog.store.PutSchedule(s)
}

func (o fleetOps) SetOverride(ov programme.Override) error {
	if o.prog.store == nil {
		return errNoProgramme
	}
	return o.prog.store.PutOverride(ov, time.Now())
}

func (o fleetOps) ClearOverride() error {
	if o.prog.store == nil {
		return errNoProgramme
	}
	_, err := o.prog.store.ClearOverride(time.Now())
	return err
}

var errNoProgramme = errors.New("this box has no programme")
