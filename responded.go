package websocket

import (
	"net/http"
	"reflect"
	"sync"
)

// responseStarted reports whether the handler already wrote a response to
// w (a status or a body), which a handshake can no longer replace: net/http
// would send it first when the connection is hijacked, and over HTTP/2 the
// stream already has its answer.
//
// net/http offers no way to ask. Its own response writers, for HTTP/1.1
// and HTTP/2, note it in a field named wroteHeader, which this reads,
// through any wrappers that implement Unwrap. For any other writer, or a
// net/http whose writers no longer have that field, it reports false, and
// Accept goes on as before.
func responseStarted(w http.ResponseWriter) bool {
	for range 16 { // wrappers that unwrap to themselves end here too
		if path := wroteHeaderPath(reflect.TypeOf(w)); path != nil {
			f, err := reflect.ValueOf(w).Elem().FieldByIndexErr(path)
			return err == nil && f.Bool()
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return false
		}
		w = u.Unwrap()
	}
	return false
}

// wroteHeaderPaths caches wroteHeaderPath's answer per type.
var wroteHeaderPaths sync.Map // reflect.Type -> []int

// wroteHeaderPath returns the index path, from the struct that t points
// to, of net/http's wroteHeader flag: a field of the struct, or of the
// struct that its first field points to (HTTP/2's writer keeps its state
// there). It returns nil for a type that is not net/http's.
func wroteHeaderPath(t reflect.Type) []int {
	if p, ok := wroteHeaderPaths.Load(t); ok {
		return p.([]int)
	}
	var path []int
	if t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct && t.Elem().PkgPath() == "net/http" {
		s := t.Elem()
		if f, ok := s.FieldByName("wroteHeader"); ok && f.Type.Kind() == reflect.Bool && len(f.Index) == 1 {
			path = f.Index
		} else if s.NumField() > 0 {
			if inner := s.Field(0).Type; inner.Kind() == reflect.Pointer && inner.Elem().Kind() == reflect.Struct {
				if f, ok := inner.Elem().FieldByName("wroteHeader"); ok && f.Type.Kind() == reflect.Bool && len(f.Index) == 1 {
					path = []int{0, f.Index[0]}
				}
			}
		}
	}
	wroteHeaderPaths.Store(t, path)
	return path
}
