package core

import "reflect"

// tableOf converts a named map type with string keys (a protocol's table
// type) into a Table.
func tableOf(v any) (Table, bool) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Map || rv.Type().Key().Kind() != reflect.String {
		return nil, false
	}
	if !rv.Type().ConvertibleTo(reflect.TypeOf(Table(nil))) {
		return nil, false
	}
	return rv.Convert(reflect.TypeOf(Table(nil))).Interface().(Table), true
}
