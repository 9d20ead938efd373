package httpapi

// AppendNanos exposes appendNanos to the external tests.
var AppendNanos = appendNanos
