package config

import "github.com/shanghai-mca/mzhub/configs"

// DefaultFile is the embedded profile shipped in the binary.
var DefaultFile = configs.Embedded
