package commands

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/engines/passwordpolicy"
	"github.com/ledger-secrets/ledger/ledger"
	pwpolicyview "github.com/ledger-secrets/ledger/projections/passwordpolicy"
)

// genericNameRE is Vault's framework.GenericNameRegex: letters, digits, '_', '-', '.', not
// starting or ending with '-' or '.'.
var genericNameRE = regexp.MustCompile(`^\w(([\w.-]+)?\w)?$`)

// passwordPolicies serves sys/policies/password[/:name[/generate]].
func (s *sysBackend) passwordPolicies(ctx context.Context, req *engines.Request, rest string) (*engines.Response, error) {
	if rest == "" {
		if req.Op != engines.OpList && req.Op != engines.OpRead {
			return nil, engines.ErrUnsupported
		}
		return &engines.Response{Data: map[string]any{"keys": s.st.sysv.pwpolicy.Names()}}, nil
	}
	name, generate := strings.CutSuffix(rest, "/generate")
	if !genericNameRE.MatchString(name) || len(name) > 128 {
		return nil, engines.BadRequest("invalid password policy name %q: use letters, digits, '_', '-' and '.'", name)
	}
	if generate {
		if req.Op != engines.OpRead {
			return nil, engines.ErrUnsupported
		}
		if _, ok := s.st.sysv.pwpolicy.Get(name); !ok {
			return nil, engines.Errorf(engines.ErrNotFound, "password policy %q does not exist", name)
		}
		pw, err := s.st.generatePassword(ctx, name)
		if err != nil {
			return nil, err
		}
		return &engines.Response{Data: map[string]any{"password": pw}}, nil
	}
	switch req.Op {
	case engines.OpRead:
		e, ok := s.st.sysv.pwpolicy.Get(name)
		if !ok {
			return nil, engines.Errorf(engines.ErrNotFound, "password policy %q not found", name)
		}
		return &engines.Response{Data: map[string]any{"policy": e.Policy}}, nil
	case engines.OpCreate, engines.OpUpdate:
		text, err := engines.String(req.Data, "policy", "")
		if err != nil {
			return nil, err
		}
		if strings.TrimSpace(text) == "" {
			return nil, engines.BadRequest("missing policy: the field \"policy\" holds the policy in HCL, JSON or base64")
		}
		// Proven to generate now, so a policy that cannot is refused here and not at its use.
		if _, err := passwordpolicy.Check(ctx, text); err != nil {
			return nil, engines.BadRequest("%s", err.Error())
		}
		b, _ := json.Marshal(pwpolicyview.WrittenPayload{Name: name, Policy: text})
		return &engines.Response{Events: []ledger.Event{{Type: pwpolicyview.Written, Subject: ledger.SubjectFor("password_policy", name), Payload: b}}}, nil
	case engines.OpDelete:
		if _, ok := s.st.sysv.pwpolicy.Get(name); !ok {
			return nil, nil
		}
		b, _ := json.Marshal(pwpolicyview.DeletedPayload{Name: name})
		return &engines.Response{Events: []ledger.Event{{Type: pwpolicyview.Deleted, Subject: ledger.SubjectFor("password_policy", name), Payload: b}}}, nil
	}
	return nil, engines.ErrUnsupported
}

// generatePassword returns a password from the named policy. Engines get it through their
// options (the database engine's password_policy).
func (st *unsealed) generatePassword(ctx context.Context, name string) (string, error) {
	e, ok := st.sysv.pwpolicy.Get(name)
	if !ok {
		return "", engines.BadRequest("password policy %q does not exist", name)
	}
	p, err := passwordpolicy.Parse(e.Policy)
	if err != nil {
		return "", engines.BadRequest("stored password policy %q no longer parses: %s", name, err.Error())
	}
	pw, err := p.Generate(ctx)
	if errors.Is(err, passwordpolicy.ErrCannotGenerate) {
		return "", engines.BadRequest("password policy %q: %s", name, err.Error())
	}
	return pw, err
}
