package testutil

import (
	"reflect"
	"testing"
	"unsafe"
)

// FillFields sets every field of the struct p points to, its unexported
// fields and those of the structs inside it too, to a value that is not
// zero: the way to hold a function that clears a struct field by field to
// every field, the ones added later among them. An interface field takes
// the first of impls that implements it (the test fails when none does).
func FillFields(tb testing.TB, p any, impls ...any) {
	tb.Helper()
	v := reflect.ValueOf(p)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		tb.Fatalf("FillFields: %T is not a pointer to a struct", p)
	}
	fill(tb, v.Elem(), v.Elem().Type().Name(), impls)
}

func fill(tb testing.TB, v reflect.Value, path string, impls []any) {
	tb.Helper()
	if !v.CanSet() { // unexported: reach it through its address
		v = reflect.NewAt(v.Type(), unsafe.Pointer(v.UnsafeAddr())).Elem()
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			fill(tb, v.Field(i), path+"."+v.Type().Field(i).Name, impls)
		}
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		v.SetUint(1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
	case reflect.Array:
		for i := range v.Len() {
			fill(tb, v.Index(i), path, impls)
		}
	case reflect.Interface:
		for _, impl := range impls {
			if iv := reflect.ValueOf(impl); iv.Type().Implements(v.Type()) {
				v.Set(iv)
				return
			}
		}
		tb.Fatalf("FillFields: no value given implements %s (%s)", v.Type(), path)
	default:
		tb.Fatalf("FillFields: cannot fill %s (%s)", v.Kind(), path)
	}
}
