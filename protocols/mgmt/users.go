package mgmt

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/unifiedms/ums/core/auth"
)

// maxBody bounds the JSON body of a PUT.
const maxBody = 1 << 20

// userRoutes adds the endpoints of users, permissions and topic permissions,
// shaped as RabbitMQ's (rabbit_mgmt_wm_user, _permission,
// _topic_permission and their listings). All are for administrators only.
func (a *API) userRoutes(mux *http.ServeMux) {
	for pattern, h := range map[string]http.HandlerFunc{
		"GET /api/users":                               a.listUsers,
		"GET /api/users/{$}":                           a.listUsers,
		"GET /api/users/{name}":                        a.getUser,
		"PUT /api/users/{name}":                        a.putUser,
		"DELETE /api/users/{name}":                     a.deleteUser,
		"GET /api/users/{name}/permissions":            a.userPermissions,
		"GET /api/users/{name}/topic-permissions":      a.userTopicPermissions,
		"GET /api/vhosts/{vhost}/permissions":          a.vhostPermissions,
		"GET /api/vhosts/{vhost}/topic-permissions":    a.vhostTopicPermissions,
		"GET /api/permissions":                         a.listPermissions,
		"GET /api/permissions/{$}":                     a.listPermissions,
		"GET /api/permissions/{vhost}/{user}":          a.getPermission,
		"PUT /api/permissions/{vhost}/{user}":          a.putPermission,
		"DELETE /api/permissions/{vhost}/{user}":       a.deletePermission,
		"GET /api/topic-permissions":                   a.listTopicPermissions,
		"GET /api/topic-permissions/{$}":               a.listTopicPermissions,
		"GET /api/topic-permissions/{vhost}/{user}":    a.getTopicPermissions,
		"PUT /api/topic-permissions/{vhost}/{user}":    a.putTopicPermission,
		"DELETE /api/topic-permissions/{vhost}/{user}": a.deleteTopicPermissions,
	} {
		handle(mux, pattern, admin(h))
	}
}

func notFound(w http.ResponseWriter) {
	writeError(w, http.StatusNotFound, "not_found", "Object Not Found")
}

func badRequest(w http.ResponseWriter, reason string) {
	writeError(w, http.StatusBadRequest, "bad_request", reason)
}

// writeAuthError reports an error of the user store.
func writeAuthError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, auth.ErrNoSuchUser):
		notFound(w)
	case errors.Is(err, auth.ErrInvalidPermission), errors.Is(err, auth.ErrInvalidHash),
		errors.Is(err, auth.ErrInvalidUser):
		badRequest(w, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, "internal_server_error", err.Error())
	}
}

// created answers a successful PUT as RabbitMQ does: 201 for a new
// resource, 204 for a replaced one.
func created(w http.ResponseWriter, isNew bool) {
	if isNew {
		w.WriteHeader(http.StatusCreated)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// body is a decoded JSON object whose fields are decoded on demand.
type body map[string]json.RawMessage

// readBody decodes the request's JSON object, answering 400 if it is not one.
func readBody(w http.ResponseWriter, r *http.Request) (body, bool) {
	return readBodyLimit(w, r, maxBody)
}

// readBodyLimit is readBody for a body of up to limit bytes.
func readBodyLimit(w http.ResponseWriter, r *http.Request, limit int64) (body, bool) {
	var b body
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err == nil {
		err = json.Unmarshal(data, &b)
		if err == nil && b == nil {
			err = errors.New("not a JSON object")
		}
	}
	if err != nil {
		badRequest(w, "invalid JSON body: "+err.Error())
		return nil, false
	}
	return b, true
}

// str returns field key as a string, and whether it is present. A field
// that is not a string is an error.
func (b body) str(key string) (string, bool, error) {
	raw, ok := b[key]
	if !ok {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", true, fmt.Errorf("%s must be a string", key)
	}
	return s, true, nil
}

// required returns the string fields keys, all required (RabbitMQ's
// with_decode), or answers 400.
func (b body) required(w http.ResponseWriter, keys ...string) ([]string, bool) {
	out := make([]string, len(keys))
	for i, k := range keys {
		s, ok, err := b.str(k)
		if err == nil && !ok {
			err = fmt.Errorf("key_missing: %s", k)
		}
		if err != nil {
			badRequest(w, err.Error())
			return nil, false
		}
		out[i] = s
	}
	return out, true
}

// tags reads field tags, which RabbitMQ accepts as a comma-separated string
// or a list of strings. A missing or null field means no tags.
func (b body) tags() ([]string, error) {
	raw, ok := b["tags"]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	var list []string
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		list = strings.Split(s, ",")
	} else if err := json.Unmarshal(raw, &list); err != nil {
		return nil, errors.New("tags must be a comma-separated string or a list of strings")
	}
	var out []string
	for _, t := range list {
		if t = strings.TrimSpace(t); t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

func userJSON(u *auth.User) map[string]any {
	alg := u.HashingAlgorithm
	if alg == "" {
		alg = auth.HashSHA256
	}
	tags := u.Tags
	if tags == nil {
		tags = []string{}
	}
	return map[string]any{"name": u.Name, "password_hash": base64.StdEncoding.EncodeToString(u.PasswordHash),
		"hashing_algorithm": alg, "tags": tags, "limits": map[string]any{}}
}

func permJSON(user, vhost string, p auth.Permission) map[string]any {
	return map[string]any{"user": user, "vhost": vhost, "configure": p.Configure, "write": p.Write, "read": p.Read}
}

func topicJSON(user, vhost string, p auth.TopicPermission) map[string]any {
	return map[string]any{"user": user, "vhost": vhost, "exchange": p.Exchange, "write": p.Write, "read": p.Read}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// permissionsOf lists the permissions of accts, by user then vhost, keeping
// those of vhost only when it is not "".
func permissionsOf(accts []*auth.Account, vhost string) []map[string]any {
	out := []map[string]any{}
	for _, acct := range accts {
		for _, v := range sortedKeys(acct.Permissions) {
			if vhost == "" || v == vhost {
				out = append(out, permJSON(acct.Name, v, acct.Permissions[v]))
			}
		}
	}
	return out
}

// topicPermissionsOf is permissionsOf for topic permissions.
func topicPermissionsOf(accts []*auth.Account, vhost string) []map[string]any {
	out := []map[string]any{}
	for _, acct := range accts {
		for _, v := range sortedKeys(acct.TopicPermissions) {
			if vhost == "" || v == vhost {
				for _, p := range acct.TopicPermissions[v] {
					out = append(out, topicJSON(acct.Name, v, p))
				}
			}
		}
	}
	return out
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request) {
	out := []map[string]any{}
	for _, u := range a.Users.Users() {
		out = append(out, userJSON(u))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request) {
	u, ok := a.Users.User(r.PathValue("name"))
	if !ok {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, userJSON(u))
}

// putUser creates or updates a user as RabbitMQ's put_user does: with
// "password", or "password_hash" (base64, optionally with
// "hashing_algorithm"), or neither for a user without a password. An
// update keeps the user's permissions.
func (a *API) putUser(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	tags, err := b.tags()
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	password, hasPassword, err := b.str("password")
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	hash64, hasHash, err := b.str("password_hash")
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	alg, _, err := b.str("hashing_algorithm")
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	if hasPassword && hasHash {
		badRequest(w, "both_password_and_password_hash_are_provided")
		return
	}
	switch alg {
	case "", auth.HashSHA256, auth.HashSHA512, auth.HashMD5:
	default:
		badRequest(w, fmt.Sprintf("unknown hashing_algorithm %q", alg))
		return
	}
	var hash []byte
	if hasHash {
		if hash, err = base64.StdEncoding.DecodeString(hash64); err != nil {
			badRequest(w, "password_hash is not valid base64")
			return
		}
		if got := auth.HashAlgorithm(hash); len(hash) > 0 && alg != "" && got != alg {
			badRequest(w, fmt.Sprintf("password_hash of %d bytes does not fit hashing_algorithm %s", len(hash), alg))
			return
		}
	}
	_, exists := a.Users.User(name)
	if hasPassword {
		err = a.Users.PutUser(name, password, tags)
	} else {
		err = a.Users.PutUserHash(name, hash, tags)
	}
	if err != nil {
		writeAuthError(w, err)
		return
	}
	created(w, !exists)
}

func (a *API) deleteUser(w http.ResponseWriter, r *http.Request) {
	if err := a.Users.DeleteUser(r.PathValue("name")); err != nil {
		writeAuthError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) userPermissions(w http.ResponseWriter, r *http.Request) {
	acct, ok := a.Users.Account(r.PathValue("name"))
	if !ok {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, permissionsOf([]*auth.Account{acct}, ""))
}

func (a *API) userTopicPermissions(w http.ResponseWriter, r *http.Request) {
	acct, ok := a.Users.Account(r.PathValue("name"))
	if !ok {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, topicPermissionsOf([]*auth.Account{acct}, ""))
}

func (a *API) vhostPermissions(w http.ResponseWriter, r *http.Request) {
	vhost := r.PathValue("vhost")
	if _, ok := a.Broker.Vhost(vhost); !ok {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, permissionsOf(a.Users.Accounts(), vhost))
}

func (a *API) vhostTopicPermissions(w http.ResponseWriter, r *http.Request) {
	vhost := r.PathValue("vhost")
	if _, ok := a.Broker.Vhost(vhost); !ok {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, topicPermissionsOf(a.Users.Accounts(), vhost))
}

func (a *API) listPermissions(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, permissionsOf(a.Users.Accounts(), ""))
}

func (a *API) listTopicPermissions(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, topicPermissionsOf(a.Users.Accounts(), ""))
}

// userAndVhost returns the user and vhost named in the path, and whether
// both exist.
func (a *API) userAndVhost(r *http.Request) (user, vhost string, ok bool) {
	user, vhost = r.PathValue("user"), r.PathValue("vhost")
	_, uok := a.Users.User(user)
	_, vok := a.Broker.Vhost(vhost)
	return user, vhost, uok && vok
}

func (a *API) getPermission(w http.ResponseWriter, r *http.Request) {
	user, vhost, ok := a.userAndVhost(r)
	p, set := a.Users.Permission(user, vhost)
	if !ok || !set {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, permJSON(user, vhost, p))
}

// putPermission sets a user's permissions on a vhost. As in RabbitMQ, an
// unknown user or vhost is a 400 (vhost_or_user_not_found), not a 404.
func (a *API) putPermission(w http.ResponseWriter, r *http.Request) {
	user, vhost, ok := a.userAndVhost(r)
	if !ok {
		badRequest(w, "vhost_or_user_not_found")
		return
	}
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	f, ok := b.required(w, "configure", "write", "read")
	if !ok {
		return
	}
	_, exists := a.Users.Permission(user, vhost)
	if err := a.Users.SetPermission(user, vhost, auth.Permission{Configure: f[0], Write: f[1], Read: f[2]}); err != nil {
		writeAuthError(w, err)
		return
	}
	created(w, !exists)
}

func (a *API) deletePermission(w http.ResponseWriter, r *http.Request) {
	user, vhost, ok := a.userAndVhost(r)
	if _, set := a.Users.Permission(user, vhost); !ok || !set {
		notFound(w)
		return
	}
	if err := a.Users.ClearPermission(user, vhost); err != nil {
		writeAuthError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// getTopicPermissions lists a user's topic permissions on a vhost, one per
// exchange; 404 when there are none, as in RabbitMQ.
func (a *API) getTopicPermissions(w http.ResponseWriter, r *http.Request) {
	user, vhost, ok := a.userAndVhost(r)
	tps := a.Users.TopicPermissions(user, vhost)
	if !ok || len(tps) == 0 {
		notFound(w)
		return
	}
	out := make([]map[string]any, 0, len(tps))
	for _, p := range tps {
		out = append(out, topicJSON(user, vhost, p))
	}
	writeJSON(w, http.StatusOK, out)
}

// putTopicPermission sets a user's topic permission on one exchange of a
// vhost. It answers 201 when the user had no topic permission on the vhost
// before, else 204, as RabbitMQ does.
func (a *API) putTopicPermission(w http.ResponseWriter, r *http.Request) {
	user, vhost, ok := a.userAndVhost(r)
	if !ok {
		badRequest(w, "vhost_or_user_not_found")
		return
	}
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	f, ok := b.required(w, "exchange", "write", "read")
	if !ok {
		return
	}
	isNew := len(a.Users.TopicPermissions(user, vhost)) == 0
	if err := a.Users.SetTopicPermission(user, vhost, auth.TopicPermission{Exchange: f[0], Write: f[1], Read: f[2]}); err != nil {
		writeAuthError(w, err)
		return
	}
	created(w, isNew)
}

// deleteTopicPermissions clears a user's topic permissions on a vhost, or
// only those on exchange ?exchange= when given.
func (a *API) deleteTopicPermissions(w http.ResponseWriter, r *http.Request) {
	user, vhost, ok := a.userAndVhost(r)
	if !ok || len(a.Users.TopicPermissions(user, vhost)) == 0 {
		notFound(w)
		return
	}
	if err := a.Users.ClearTopicPermission(user, vhost, r.URL.Query().Get("exchange")); err != nil {
		writeAuthError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
