package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Sentinel errors. Wrap them with %w and context; Code and HTTPStatus map
// them to the wire in one place.
var (
	ErrNotFound    = errors.New("not found")
	ErrConflict    = errors.New("conflict")
	ErrInvalid     = errors.New("invalid")
	ErrUnavailable = errors.New("unavailable")
	// ErrForbidden: the caller is known but may not do this (a removed
	// node, a wrong join token).
	ErrForbidden = errors.New("forbidden")
)

// Stable error codes of the API.
const (
	CodeNotFound    = "not_found"
	CodeConflict    = "conflict"
	CodeInvalid     = "invalid"
	CodeUnavailable = "unavailable"
	CodeForbidden   = "forbidden"
	CodeInternal    = "internal"
)

// Error is the JSON body of every failed request.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Status  int    `json:"-"`
}

func (e *Error) Error() string { return e.Message }

// Unwrap lets errors.Is match a wire error against the sentinels.
func (e *Error) Unwrap() error {
	switch e.Code {
	case CodeNotFound:
		return ErrNotFound
	case CodeConflict:
		return ErrConflict
	case CodeInvalid:
		return ErrInvalid
	case CodeUnavailable:
		return ErrUnavailable
	case CodeForbidden:
		return ErrForbidden
	}
	return nil
}

// ToError turns any error into its wire form.
func ToError(err error) *Error {
	var we *Error
	if errors.As(err, &we) {
		return we
	}
	code, status := CodeInternal, http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNotFound):
		code, status = CodeNotFound, http.StatusNotFound
	case errors.Is(err, ErrConflict):
		code, status = CodeConflict, http.StatusConflict
	case errors.Is(err, ErrInvalid):
		code, status = CodeInvalid, http.StatusBadRequest
	case errors.Is(err, ErrUnavailable):
		code, status = CodeUnavailable, http.StatusServiceUnavailable
	case errors.Is(err, ErrForbidden):
		code, status = CodeForbidden, http.StatusForbidden
	}
	return &Error{Code: code, Message: err.Error(), Status: status}
}

// Errorf makes an error whose message is the formatted text alone and
// that matches sentinel under errors.Is.
func Errorf(sentinel error, format string, args ...any) error {
	return &sentinelError{msg: fmt.Sprintf(format, args...), sentinel: sentinel}
}

type sentinelError struct {
	msg      string
	sentinel error
}

func (e *sentinelError) Error() string { return e.msg }
func (e *sentinelError) Unwrap() error { return e.sentinel }

// WriteJSON answers a request with a JSON body.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError answers a request with the wire form of err.
func WriteError(w http.ResponseWriter, err error) {
	e := ToError(err)
	if e.Status == 0 {
		e.Status = http.StatusInternalServerError
	}
	WriteJSON(w, e.Status, e)
}
