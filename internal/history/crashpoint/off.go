//go:build !crashpoints

package crashpoint

// Enabled reports whether crash points are compiled in (-tags crashpoints).
const Enabled = false

// Hit does nothing: crash points are compiled only into builds with the
// crashpoints tag.
func Hit(string) {}
