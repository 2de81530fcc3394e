package main

import (
	"fmt"
	"net/http"
)

// addUser creates a user, or changes its password and tags.
func (e *env) addUser(name, password string) error {
	body := map[string]any{"password": password, "tags": e.tags}
	if err := e.c.sendJSON(http.MethodPut, "/api/users/"+esc(name), body, nil); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "user added")
	return nil
}

func (e *env) deleteUser(name string) error {
	if _, err := e.c.call(http.MethodDelete, "/api/users/"+esc(name), nil); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "user deleted")
	return nil
}

// setPermissions sets a user's configure, write and read patterns on
// --vhost.
func (e *env) setPermissions(user, configure, write, read string) error {
	body := map[string]any{"configure": configure, "write": write, "read": read}
	if err := e.c.sendJSON(http.MethodPut, "/api/permissions/"+e.vhostPath()+"/"+esc(user), body, nil); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "permissions set")
	return nil
}

// setTopicPermissions sets a user's topic permission on one exchange of
// --vhost.
func (e *env) setTopicPermissions(user, exchange, write, read string) error {
	body := map[string]any{"exchange": exchange, "write": write, "read": read}
	if err := e.c.sendJSON(http.MethodPut, "/api/topic-permissions/"+e.vhostPath()+"/"+esc(user), body, nil); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "topic permissions set")
	return nil
}

// exportDefinitions writes the server's definitions JSON, unchanged, to
// a file or stdout.
func (e *env) exportDefinitions(name string) error {
	data, err := e.c.call(http.MethodGet, "/api/definitions", nil)
	if err != nil {
		return err
	}
	if err := e.writeOutput(name, data); err != nil {
		return err
	}
	if name != "-" {
		fmt.Fprintf(e.stdout, "definitions exported to %s\n", name)
	}
	return nil
}

// importDefinitions posts a definitions JSON, unchanged, from a file or
// stdin.
func (e *env) importDefinitions(name string) error {
	data, err := e.readInput(name)
	if err != nil {
		return err
	}
	if _, err := e.c.call(http.MethodPost, "/api/definitions", data); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "definitions imported")
	return nil
}
