// Package compose turns Docker Compose files into the api.StackSpec that
// Drover deploys, reading them through compose-go so that interpolation,
// .env and env_file, several merged -f files, profiles, extends and include
// behave exactly as they do in Docker Compose.
//
// Load reads files from disk and returns the translated spec together with
// compose-go's normalized project (for `drover config`). Translate is the
// pure step from a compose-go project to a StackSpec; it never reads files,
// so Load reads the files of the secrets and configs the services use.
// Secret content is never written into a warning, an error or ConfigYAML.
//
// Drover supports a subset of the Compose service keys (see
// docs/compose-support.md). Every key that is set and that Drover does not
// honour yet yields a Warning naming the service and the key, with the file
// and line it was written on: nothing in a Compose file is dropped silently.
// Files Drover cannot run (a service without an image, an invalid file, a
// reference to an unknown network, ...) are refused with an *Error that says
// what is wrong and where; errors.Is(err, api.ErrInvalid) holds for them.
package compose
