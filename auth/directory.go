package auth

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moat-registry/moat/policy"
	"github.com/moat-registry/moat/storage"
)

// Document collections of the directory.
const (
	collMeta        = "meta"
	collRegistry    = "registry"
	collIdentities  = "identities"
	collAssignments = "roleAssignments"
	collScopeMaps   = "scopeMaps"
	collTokens      = "tokens"
	collServices    = "services"
	collEndpoints   = "privateEndpoints"

	keyVersion    = "version"
	keyProperties = "properties"
)

// PublicEndpoint names the main listener.
const PublicEndpoint = "public"

// Directory is the control-plane state: registry properties, identities,
// role assignments, scope maps, tokens, trusted-service instances and
// private endpoints. It persists them as documents and serves reads from
// an in-memory Snapshot that every change replaces atomically, so a
// change applies to the next request.
type Directory struct {
	docs storage.Documents
	now  func() time.Time

	mu       sync.Mutex // serialises writes
	snap     atomic.Pointer[Snapshot]
	watchers []func(*Snapshot)
}

// OpenDirectory loads the directory from docs.
func OpenDirectory(ctx context.Context, docs storage.Documents) (*Directory, error) {
	d := &Directory{docs: docs, now: time.Now}
	if err := d.reload(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

// Snapshot is the current state. Never nil.
func (d *Directory) Snapshot() *Snapshot { return d.snap.Load() }

// Watch calls fn with every new snapshot (after the change is stored).
func (d *Directory) Watch(fn func(*Snapshot)) {
	d.mu.Lock()
	d.watchers = append(d.watchers, fn)
	d.mu.Unlock()
}

// Reload rereads the state from storage (another replica may have changed
// it) and notifies watchers.
func (d *Directory) Reload(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.reload(ctx); err != nil {
		return err
	}
	d.notify()
	return nil
}

func (d *Directory) notify() {
	s := d.snap.Load()
	for _, fn := range d.watchers {
		fn(s)
	}
}

// update runs fn in a write transaction, bumps the version and swaps in
// the new snapshot. Callers hold no lock.
func (d *Directory) update(ctx context.Context, fn func(tx storage.DocTx) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	err := d.docs.UpdateDocuments(ctx, func(tx storage.DocTx) error {
		if err := fn(tx); err != nil {
			return err
		}
		// Read the version in the transaction: another replica sharing the
		// store may have moved it since this snapshot.
		var v uint64
		if b, err := tx.Get(collMeta, keyVersion); err == nil && len(b) == 8 {
			v = binary.BigEndian.Uint64(b)
		}
		return tx.Put(collMeta, keyVersion, binary.BigEndian.AppendUint64(nil, v+1))
	})
	if err != nil {
		return err
	}
	if err := d.reload(ctx); err != nil {
		return err
	}
	d.notify()
	return nil
}

func getJSON(tx storage.DocTx, coll, key string, v any) error {
	b, err := tx.Get(coll, key)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return ErrNotFound
		}
		return err
	}
	return json.Unmarshal(b, v)
}

func putJSON(tx storage.DocTx, coll, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Put(coll, key, b)
}

func deleteDoc(tx storage.DocTx, coll, key string) error {
	if err := tx.Delete(coll, key); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return ErrNotFound
		}
		return err
	}
	return nil
}

func listJSON[T any](tx storage.DocTx, coll string) ([]*T, error) {
	var out []*T
	err := tx.List(coll, func(_ string, b []byte) error {
		v := new(T)
		if err := json.Unmarshal(b, v); err != nil {
			return fmt.Errorf("%s: %w", coll, err)
		}
		out = append(out, v)
		return nil
	})
	return out, err
}

// reload builds a snapshot from storage. Callers hold d.mu (or are the
// constructor).
func (d *Directory) reload(ctx context.Context) error {
	s := &Snapshot{
		identities:  map[string]*identityRecord{},
		byPrincipal: map[string]*identityRecord{},
		tokens:      map[string]*compiledToken{},
		scopeMaps:   map[string]*ScopeMap{},
		rules:       map[string][]grantRule{},
		levels:      map[string]Level{},
		services:    map[string]*Service{},
		trusted:     map[string]trustedInfo{},
		endpoints:   map[string]*PrivateEndpoint{},
		federated:   map[federatedKey]string{},
	}
	err := d.docs.ViewDocuments(ctx, func(tx storage.DocTx) error {
		if b, err := tx.Get(collMeta, keyVersion); err == nil && len(b) == 8 {
			s.Version = binary.BigEndian.Uint64(b)
		}
		s.Properties = DefaultRegistryProperties()
		var rec propertiesRecord
		switch err := getJSON(tx, collRegistry, keyProperties, &rec); {
		case err == nil:
			s.Properties = rec.Properties
			s.ETag = strconv.Quote(strconv.FormatUint(rec.Revision, 10))
		case errors.Is(err, ErrNotFound):
			s.ETag = `"0"`
		default:
			return err
		}
		ids, err := listJSON[identityRecord](tx, collIdentities)
		if err != nil {
			return err
		}
		for _, r := range ids {
			s.identities[r.Name] = r
			s.byPrincipal[r.PrincipalID] = r
			for _, fc := range r.Federated {
				for _, aud := range fc.Audiences {
					s.federated[federatedKey{fc.Issuer, fc.Subject, aud}] = r.Name
				}
			}
		}
		ras, err := listJSON[RoleAssignment](tx, collAssignments)
		if err != nil {
			return err
		}
		for _, ra := range ras {
			s.assignments = append(s.assignments, *ra)
			role, ok1 := LookupRole(ra.Role)
			scope, ok2 := ParseRoleScope(ra.Scope)
			if !ok1 || !ok2 {
				continue
			}
			s.rules[ra.PrincipalID] = append(s.rules[ra.PrincipalID], grantRule{scope, role.Actions})
			if scope.All && role.Level > s.levels[ra.PrincipalID] {
				s.levels[ra.PrincipalID] = role.Level
			}
		}
		sort.Slice(s.assignments, func(i, j int) bool { return s.assignments[i].ID < s.assignments[j].ID })
		sms, err := listJSON[ScopeMap](tx, collScopeMaps)
		if err != nil {
			return err
		}
		for _, sm := range sms {
			s.scopeMaps[sm.Name] = sm
		}
		toks, err := listJSON[tokenRecord](tx, collTokens)
		if err != nil {
			return err
		}
		for _, t := range toks {
			ct := &compiledToken{rec: t}
			if sm := s.scopeMaps[t.ScopeMap]; sm != nil {
				for _, a := range sm.Actions {
					if scope, act, ok := ParseScopeMapAction(a); ok {
						ct.rules = append(ct.rules, grantRule{scope, act})
					}
				}
			}
			s.tokens[t.Name] = ct
		}
		svcs, err := listJSON[Service](tx, collServices)
		if err != nil {
			return err
		}
		for _, svc := range svcs {
			s.services[svc.Name] = svc
			typ, _ := lookupServiceType(svc.Type)
			info := trustedInfo{service: svc.Name, typ: svc.Type, readOnly: typ.BypassReadOnly}
			if svc.Identity.PrincipalID != "" {
				s.trusted[svc.Identity.PrincipalID] = info
			}
			for _, ua := range svc.Identity.UserAssignedIdentities {
				// Only managed identities bypass (SPEC §3): a user is
				// never a trusted service, whatever it is attached to.
				if r := s.identities[ua]; r != nil && r.Kind == KindManagedIdentity {
					s.trusted[r.PrincipalID] = info
				}
			}
		}
		eps, err := listJSON[PrivateEndpoint](tx, collEndpoints)
		if err != nil {
			return err
		}
		for _, e := range eps {
			s.endpoints[e.Name] = e
		}
		return nil
	})
	if err != nil {
		return err
	}
	pol, err := policy.Compile(s.Properties.Properties)
	if err != nil {
		return fmt.Errorf("stored registry properties: %w", err)
	}
	s.Policy = pol
	d.snap.Store(s)
	return nil
}

// propertiesRecord is the stored registry properties with their revision
// (the ETag).
type propertiesRecord struct {
	V          int        `json:"v"`
	Revision   uint64     `json:"revision"`
	Properties Properties `json:"properties"`
}

// Properties are the current registry properties and their ETag.
func (d *Directory) Properties() (Properties, string) {
	s := d.Snapshot()
	return s.Properties, s.ETag
}

// UpdateProperties applies fn to the registry properties. With ifMatch set
// it must equal the current ETag (ErrPrecondition otherwise).
func (d *Directory) UpdateProperties(ctx context.Context, ifMatch string, fn func(*Properties) error) (Properties, string, error) {
	var out Properties
	err := d.update(ctx, func(tx storage.DocTx) error {
		rec := propertiesRecord{V: 1, Properties: DefaultRegistryProperties()}
		if err := getJSON(tx, collRegistry, keyProperties, &rec); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if ifMatch != "" && ifMatch != "*" && ifMatch != strconv.Quote(strconv.FormatUint(rec.Revision, 10)) {
			return ErrPrecondition
		}
		p := rec.Properties
		// Work on a copy: fn may fail half-way.
		p.NetworkRuleSet.IPRules = append([]policy.IPRule(nil), p.NetworkRuleSet.IPRules...)
		if err := fn(&p); err != nil {
			return err
		}
		if err := p.Normalize(); err != nil {
			return err
		}
		rec.V, rec.Revision, rec.Properties = 1, rec.Revision+1, p
		out = p
		return putJSON(tx, collRegistry, keyProperties, rec)
	})
	if err != nil {
		return Properties{}, "", err
	}
	return out, d.Snapshot().ETag, nil
}
