package topology

import "errors"

// Sentinel errors.
var (
	// ErrUndeclaredTopic is returned by a guarded publisher for a topic its
	// service's declaration does not list among Produces.
	ErrUndeclaredTopic = errors.New("topic not declared by the service")
	// ErrDeclarations marks a problem of the topics declaration file.
	ErrDeclarations = errors.New("topics declaration")
)
