package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// authorize sets the request's credentials for scope and returns the
// bearer token it used ("" for none).
func (c *Client) authorize(req *http.Request, scope string) string {
	tok := c.token(scope)
	switch {
	case tok != "":
		req.Header.Set("Authorization", "Bearer "+tok)
	case c.basic.Load():
		req.SetBasicAuth(c.user, c.pass)
	}
	return tok
}

func (c *Client) token(scope string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tokens[scope]
}

// authenticate answers a WWW-Authenticate challenge for scope, which a
// request sent with the bearer token used ("" for none) received. Workers
// that meet the same challenge at once wait for one token fetch.
func (c *Client) authenticate(ctx context.Context, challenge, scope, used string) error {
	scheme, params := ParseChallenge(challenge)
	switch strings.ToLower(scheme) {
	case "basic":
		if c.user == "" {
			return errors.New("the registry asks for Basic credentials; pass --username and --password")
		}
		c.basic.Store(true)
		return nil
	case "bearer":
		realm := params["realm"]
		if realm == "" {
			return errors.New("bearer challenge without a realm")
		}
		want := params["scope"]
		if want == "" {
			want = scope
		}
		c.fetchMu.Lock()
		defer c.fetchMu.Unlock()
		if cur := c.token(scope); cur != "" && cur != used {
			return nil // another worker fetched a new token meanwhile
		}
		tok, err := c.fetchToken(ctx, realm, params["service"], want)
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.tokens[scope] = tok
		c.mu.Unlock()
		return nil
	}
	return fmt.Errorf("unsupported challenge %q", challenge)
}

// fetchToken is Docker's token flow: GET realm?service=&scope= with Basic.
func (c *Client) fetchToken(ctx context.Context, realm, service, scope string) (string, error) {
	u, err := c.base.Parse(realm)
	if err != nil {
		return "", fmt.Errorf("token realm %q: %w", realm, err)
	}
	q := u.Query()
	if service != "" {
		q.Set("service", service)
	}
	for s := range strings.FieldsSeq(scope) {
		q.Add("scope", s)
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	c.tokenFetches.Add(1)
	resp, err := c.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return "", statusError(req, resp)
	}
	var body struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return "", fmt.Errorf("token response: %w", err)
	}
	if body.Token == "" {
		body.Token = body.AccessToken
	}
	if body.Token == "" {
		return "", errors.New("token response without a token")
	}
	return body.Token, nil
}

// ParseChallenge splits a WWW-Authenticate value into its scheme and
// auth-params (quoted values unquoted; keys lower case).
func ParseChallenge(h string) (scheme string, params map[string]string) {
	h = strings.TrimSpace(h)
	scheme, rest, _ := strings.Cut(h, " ")
	params = map[string]string{}
	for {
		rest = strings.TrimLeft(rest, " ,")
		if rest == "" {
			return scheme, params
		}
		eq := strings.IndexByte(rest, '=')
		if eq < 0 {
			return scheme, params
		}
		key := strings.ToLower(strings.TrimSpace(rest[:eq]))
		rest = strings.TrimLeft(rest[eq+1:], " ")
		var val strings.Builder
		if strings.HasPrefix(rest, `"`) {
			i := 1
			for ; i < len(rest) && rest[i] != '"'; i++ {
				if rest[i] == '\\' && i+1 < len(rest) {
					i++
				}
				val.WriteByte(rest[i])
			}
			rest = rest[min(i+1, len(rest)):]
		} else {
			end := strings.IndexByte(rest, ',')
			if end < 0 {
				end = len(rest)
			}
			val.WriteString(strings.TrimSpace(rest[:end]))
			rest = rest[end:]
		}
		params[key] = val.String()
	}
}
