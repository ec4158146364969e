package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// rotate answers a leaked token in one command. Per box: create a new
// token with the old one and check it works; then save every new token to
// the inventory at once (atomically); only then revoke the old tokens
// with the new ones. A crash at any point leaves each box reachable with
// what the inventory holds.
func (c *cli) rotate(ctx context.Context, boxes []Box) (int, error) {
	hc := c.httpClient
	if hc == nil {
		var err error
		if hc, err = httpClientFor(c.inv.CAPath()); err != nil {
			return exitFailed, err
		}
	}
	type fresh struct {
		oldID string
		tok   tokenInfo
	}
	var mu sync.Mutex
	created := map[string]fresh{}
	name := "mohctl " + c.now().UTC().Format("2006-01-02T15:04Z")
	timeout := c.boxTimeout(30 * time.Second)

	res := c.each(ctx, boxes, timeout, func(ctx context.Context, b Box) (string, error) {
		if b.Token == "" {
			return "", errors.New("no token in the inventory")
		}
		old := newAPI(hc, b)
		oldID, scope := b.TokenID, c.scope
		if list, err := old.listTokens(ctx); err == nil {
			for _, t := range list {
				if (oldID == "" && t.Current) || t.ID == oldID {
					oldID = t.ID
					if scope == "" {
						scope = t.Scope
					}
				}
			}
		} else {
			return "", fmt.Errorf("list tokens: %w", err)
		}
		if scope == "" {
			scope = "admin"
		}
		nt, err := old.createToken(ctx, scope, name)
		if err != nil {
			return "", fmt.Errorf("create token: %w", err)
		}
		nb := b
		nb.Token = nt.Token
		if _, err := newAPI(hc, nb).status(ctx); err != nil {
			old.revokeToken(ctx, nt.ID)
			return "", fmt.Errorf("new token does not work, withdrawn: %w", err)
		}
		mu.Lock()
		created[b.Name] = fresh{oldID: oldID, tok: nt}
		mu.Unlock()
		return "", nil
	})

	if len(created) > 0 {
		for i, b := range c.inv.Boxes {
			if f, ok := created[b.Name]; ok {
				c.inv.Boxes[i].Token, c.inv.Boxes[i].TokenID = f.tok.Token, f.tok.ID
			}
		}
		if err := c.inv.Save(); err != nil {
			// The new tokens exist only in memory: withdraw them so no
			// unknown credential is left behind, and keep the old ones.
			for _, b := range boxes {
				if f, ok := created[b.Name]; ok {
					nb := b
					nb.Token = f.tok.Token
					rctx, cancel := context.WithTimeout(ctx, timeout)
					newAPI(hc, nb).revokeToken(rctx, f.tok.ID)
					cancel()
				}
			}
			return exitFailed, fmt.Errorf("save inventory (new tokens withdrawn, old ones still valid): %w", err)
		}
	}

	byName := map[string]int{}
	for i, r := range res {
		byName[r.Box] = i
	}
	revoke := c.each(ctx, boxes, timeout, func(ctx context.Context, b Box) (string, error) {
		f, ok := created[b.Name]
		if !ok {
			return "", errors.New(res[byName[b.Name]].Err)
		}
		if f.oldID == "" {
			return "", fmt.Errorf("new token %s saved, but the old token's id is unknown: revoke it on the box", f.tok.ID)
		}
		if f.oldID == f.tok.ID {
			return "", errors.New("old and new token ids are equal")
		}
		nb := b
		nb.Token = f.tok.Token
		if err := newAPI(hc, nb).revokeToken(ctx, f.oldID); err != nil {
			return "", fmt.Errorf("new token %s saved, revoking old %s failed: %w", f.tok.ID, f.oldID, err)
		}
		return fmt.Sprintf("rotated: new token %s saved, old %s revoked", f.tok.ID, f.oldID), nil
	})
	return c.report("token rotate", revoke), nil
}
