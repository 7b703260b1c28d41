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
	req, _ := http.NewRequest("POST", "https://hub.example/partner/v1/funeral/halls?b=2&a=1",
		strings.NewReader(`{"hall_id":"H01","status":"free"}`))
	_ = sign.SignAt(req, "fh-demo-01", secret, time.Unix(1764273600, 0), "3f1c9a7e5b2d4c6f8a0b1c2d3e4f5a6b")
	fmt.Println(req.Header.Get(sign.HeaderSignature))
	// Output: 19f11babb8895ecf59c8a91471a270ce629b87e23b0fdba80d403d4f6439dcba
}
