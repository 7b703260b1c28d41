package sign_test

import (
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/security/sign"
)

// The worked example of docs/signing.md.
func ExampleSignAt() {
	secret, _ := hex.DecodeString("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	req, _ := http.NewRequest("PUT", "http://127.0.0.1:18480/sandbox/partner/v1/halls/H-001",
		strings.NewReader(`{"version":1,"name":"长青厅","category":"large","capacity":300,"price_fen":280000,"status":"available"}`))
	_ = sign.SignAt(req, "fh-demo-01", secret, time.Unix(1764273600, 0), "3f1c9a7e5b2d4c6f8a0b1c2d3e4f5a6b")
	fmt.Println(req.Header.Get(sign.HeaderSignature))
	// Output: a305d48cebfb4415326eece8dab17cdc04b0c5e5e9f5a74d156040bdc5632eef
}
