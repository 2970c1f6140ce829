package auth

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/moat-registry/moat/storage"
)

// RoleAssignments lists role assignments by id.
func (s *Snapshot) RoleAssignments() []RoleAssignment {
	return append([]RoleAssignment(nil), s.assignments...)
}

// RoleAssignment returns one role assignment.
func (s *Snapshot) RoleAssignment(id string) (RoleAssignment, bool) {
	for _, ra := range s.assignments {
		if ra.ID == id {
			return ra, true
		}
	}
	return RoleAssignment{}, false
}

// PutRoleAssignment creates or replaces a role assignment. Principal may
// be an identity's name or principalId; the assignment keeps the
// principalId and shows the current name. The role is stored by its
// canonical name.
func (d *Directory) PutRoleAssignment(ctx context.Context, ra RoleAssignment) (RoleAssignment, bool, error) {
	if !validName(ra.ID) && !validUUID(ra.ID) {
		return RoleAssignment{}, false, invalid("id: %q must be 1–64 letters, digits, '.', '_' or '-'", ra.ID)
	}
	role, ok := LookupRole(ra.Role)
	if !ok {
		return RoleAssignment{}, false, invalid("role: %q is not a built-in role (Pull, Push, Delete, ImageSigner, Reader, Contributor, Owner or their Acr* aliases)", ra.Role)
	}
	ra.Role = role.Name
	if ra.Scope == "" {
		ra.Scope = "/"
	}
	if _, ok := ParseRoleScope(ra.Scope); !ok {
		return RoleAssignment{}, false, invalid("scope: %q is not / or repositories/<name>, repositories/<prefix>/*", ra.Scope)
	}
	who := ra.Principal
	if who == "" {
		who = ra.PrincipalID
	}
	created := false
	err := d.update(ctx, func(tx storage.DocTx) error {
		snap := d.Snapshot()
		rec := snap.identities[who]
		if rec == nil {
			rec = snap.byPrincipal[who]
		}
		if rec == nil {
			return invalid("principal: no identity named or with principalId %q", who)
		}
		if ra.PrincipalID != "" && ra.PrincipalID != rec.PrincipalID {
			return invalid("principalId: %q is not the principalId of %q", ra.PrincipalID, rec.Name)
		}
		ra.Principal, ra.PrincipalID = rec.Name, rec.PrincipalID
		var old RoleAssignment
		switch err := getJSON(tx, collAssignments, ra.ID, &old); {
		case errors.Is(err, ErrNotFound):
			created = true
		case err != nil:
			return err
		}
		return putJSON(tx, collAssignments, ra.ID, ra)
	})
	return ra, created, err
}

// DeleteRoleAssignment removes a role assignment.
func (d *Directory) DeleteRoleAssignment(ctx context.Context, id string) error {
	return d.update(ctx, func(tx storage.DocTx) error { return deleteDoc(tx, collAssignments, id) })
}

func validUUID(s string) bool { return len(s) == 36 && validName(s) }

// ScopeMaps lists scope maps by name.
func (s *Snapshot) ScopeMaps() []ScopeMap {
	out := make([]ScopeMap, 0, len(s.scopeMaps))
	for _, sm := range s.scopeMaps {
		out = append(out, *sm)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ScopeMap returns one scope map.
func (s *Snapshot) ScopeMap(name string) (ScopeMap, bool) {
	sm := s.scopeMaps[name]
	if sm == nil {
		return ScopeMap{}, false
	}
	return *sm, true
}

// PutScopeMap creates or replaces a scope map.
func (d *Directory) PutScopeMap(ctx context.Context, sm ScopeMap) (ScopeMap, bool, error) {
	if !validName(sm.Name) {
		return ScopeMap{}, false, invalid("name: %q must be 1–64 letters, digits, '.', '_' or '-'", sm.Name)
	}
	if len(sm.Actions) == 0 {
		return ScopeMap{}, false, invalid("actions: at least one action, e.g. repositories/app/content/read")
	}
	if len(sm.Actions) > 500 {
		return ScopeMap{}, false, invalid("actions: at most 500")
	}
	for i, a := range sm.Actions {
		if _, _, ok := ParseScopeMapAction(a); !ok {
			return ScopeMap{}, false, invalid("actions[%d]: %q is not repositories/<repo>/content/read|write|delete or metadata/read|write", i, a)
		}
	}
	created := false
	err := d.update(ctx, func(tx storage.DocTx) error {
		if err := getJSON(tx, collScopeMaps, sm.Name, &ScopeMap{}); errors.Is(err, ErrNotFound) {
			created = true
		} else if err != nil {
			return err
		}
		return putJSON(tx, collScopeMaps, sm.Name, sm)
	})
	return sm, created, err
}

// DeleteScopeMap removes a scope map no token uses.
func (d *Directory) DeleteScopeMap(ctx context.Context, name string) error {
	return d.update(ctx, func(tx storage.DocTx) error {
		toks, err := listJSON[tokenRecord](tx, collTokens)
		if err != nil {
			return err
		}
		for _, t := range toks {
			if t.ScopeMap == name {
				return conflict("token %q uses scope map %q", t.Name, name)
			}
		}
		return deleteDoc(tx, collScopeMaps, name)
	})
}

// Tokens lists tokens by name.
func (s *Snapshot) Tokens() []Token {
	out := make([]Token, 0, len(s.tokens))
	for _, t := range s.tokens {
		out = append(out, t.rec.view())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Token returns one token.
func (s *Snapshot) Token(name string) (Token, bool) {
	t := s.tokens[name]
	if t == nil {
		return Token{}, false
	}
	return t.rec.view(), true
}

// PutToken creates a token or changes its scope map and status.
func (d *Directory) PutToken(ctx context.Context, t Token) (Token, bool, error) {
	if !validName(t.Name) {
		return Token{}, false, invalid("name: %q must be 1–64 letters, digits, '.', '_' or '-'", t.Name)
	}
	switch t.Status {
	case "":
		t.Status = TokenEnabled
	case TokenEnabled, TokenDisabled:
	default:
		return Token{}, false, invalid("status: %q is not enabled or disabled", t.Status)
	}
	var out Token
	created := false
	err := d.update(ctx, func(tx storage.DocTx) error {
		if err := getJSON(tx, collScopeMaps, t.ScopeMap, &ScopeMap{}); err != nil {
			if errors.Is(err, ErrNotFound) {
				return invalid("scopeMap: no scope map named %q", t.ScopeMap)
			}
			return err
		}
		var rec tokenRecord
		switch err := getJSON(tx, collTokens, t.Name, &rec); {
		case errors.Is(err, ErrNotFound):
			if err := getJSON(tx, collIdentities, t.Name, &identityRecord{}); err == nil {
				return conflict("the username %q is taken by an identity", t.Name)
			}
			rec = tokenRecord{V: 1, ID: newID(), Name: t.Name, CreatedAt: d.now().UTC()}
			created = true
		case err != nil:
			return err
		}
		rec.ScopeMap, rec.Status = t.ScopeMap, t.Status
		out = rec.view()
		return putJSON(tx, collTokens, t.Name, rec)
	})
	return out, created, err
}

// DeleteToken removes a token.
func (d *Directory) DeleteToken(ctx context.Context, name string) error {
	return d.update(ctx, func(tx storage.DocTx) error { return deleteDoc(tx, collTokens, name) })
}

// GenerateTokenPassword (re)generates password1 or password2 of a token
// and returns it once.
func (d *Directory) GenerateTokenPassword(ctx context.Context, token, name string, expiresIn time.Duration) (NewTokenPassword, error) {
	if name == "" {
		name = "password1"
	}
	if name != "password1" && name != "password2" {
		return NewTokenPassword{}, invalid("name: %q is not password1 or password2", name)
	}
	if expiresIn < 0 {
		return NewTokenPassword{}, invalid("expiresIn: must not be negative")
	}
	if _, ok := d.Snapshot().tokens[token]; !ok {
		return NewTokenPassword{}, ErrNotFound // before paying for a hash
	}
	value := generateSecret()
	hash, err := hashSecret(value)
	if err != nil {
		return NewTokenPassword{}, err
	}
	var out NewTokenPassword
	err = d.update(ctx, func(tx storage.DocTx) error {
		var rec tokenRecord
		if err := getJSON(tx, collTokens, token, &rec); err != nil {
			return err
		}
		now := d.now().UTC()
		pw := passwordRecord{Name: name, Hash: hash, CreatedAt: now}
		if expiresIn > 0 {
			exp := now.Add(expiresIn).Truncate(time.Second)
			pw.ExpiresAt = &exp
		}
		kept := rec.Passwords[:0]
		for _, p := range rec.Passwords {
			if p.Name != name {
				kept = append(kept, p)
			}
		}
		rec.Passwords = append(kept, pw)
		sort.Slice(rec.Passwords, func(i, j int) bool { return rec.Passwords[i].Name < rec.Passwords[j].Name })
		out = NewTokenPassword{Name: name, Value: value, ExpiresAt: pw.ExpiresAt}
		return putJSON(tx, collTokens, token, rec)
	})
	return out, err
}
