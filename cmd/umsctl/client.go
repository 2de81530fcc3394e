package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// requestTimeout bounds one API call.
const requestTimeout = 60 * time.Second

// client calls the management and notification APIs of one server.
type client struct {
	base     string // http://host:port, no trailing slash
	user     string
	password string
	vhost    string // the notification API's X-UMS-Vhost
	http     *http.Client
}

// apiError is a refusal by the server: its status and the reason it gave.
type apiError struct {
	status int
	reason string
}

func (e *apiError) Error() string { return e.reason }

// esc escapes one path segment; the default vhost "/" becomes "%2F".
func esc(s string) string { return url.PathEscape(s) }

// call sends a request with body (nil for none) and returns the answer's
// body when its status is 2xx; another status is an *apiError carrying
// the answer's "reason" or "error".
func (c *client) call(method, path string, body []byte) ([]byte, error) {
	return c.callWith(method, path, body, nil)
}

// callWith is call with extra request headers.
func (c *client) callWith(method, path string, body []byte, header map[string]string) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(c.user, c.password)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if strings.HasPrefix(path, "/api/v1/") {
		req.Header.Set("X-UMS-Vhost", c.vhost)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading the answer to %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, &apiError{status: resp.StatusCode, reason: reasonOf(resp.Status, data)}
	}
	return data, nil
}

// reasonOf picks the reason out of an error answer. The management API
// answers {"error": kind, "reason": text}; the notification API answers
// {"error": text} or, for an invalid field, {"error": text, "field",
// "reason"} where "error" says the most.
func reasonOf(status string, data []byte) string {
	var e struct {
		Error  string `json:"error"`
		Reason string `json:"reason"`
		Field  string `json:"field"`
	}
	if json.Unmarshal(data, &e) == nil {
		switch {
		case e.Field != "" && e.Error != "":
			return e.Error
		case e.Reason != "":
			return e.Reason
		case e.Error != "":
			return e.Error
		}
	}
	if s := strings.TrimSpace(string(data)); s != "" && len(s) < 200 {
		return status + ": " + s
	}
	return status
}

// getJSON decodes the answer to a GET into out.
func (c *client) getJSON(path string, out any) error {
	data, err := c.call(http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	return decode(data, out)
}

// sendJSON sends v as the JSON body and decodes a non-empty answer into
// out (when not nil).
func (c *client) sendJSON(method, path string, v, out any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	data, err := c.call(method, path, body)
	if err != nil || out == nil || len(bytes.TrimSpace(data)) == 0 {
		return err
	}
	return decode(data, out)
}

func decode(data []byte, out any) error {
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("unexpected answer from the server: %w", err)
	}
	return nil
}
