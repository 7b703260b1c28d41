package banksim

import (
	"encoding/hex"

	"github.com/emmansun/gmsm/sm3"
)

func sum(b []byte) (string, int64) {
	h := sm3.Sum(b)
	return hex.EncodeToString(h[:]), int64(len(b))
}
