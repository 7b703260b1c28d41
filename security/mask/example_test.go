package mask_test

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/shanghai-mca/mzhub/security/mask"
)

func Example() {
	fmt.Println(mask.IDNumber("31010119900307123X"))
	fmt.Println(mask.Account("6222021234567890123"))
	fmt.Println(mask.Phone("13812345678"))
	fmt.Println(mask.Name("张三丰"))
	fmt.Println(mask.Text("退款 11010519491231002X 至 6222021234567890123"))
	// Output:
	// 310***********123X
	// ***************0123
	// 138****5678
	// 张**
	// 退款 110***********002X 至 ***************0123
}

func ExampleNewHandler() {
	h := slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}})
	log := slog.New(mask.NewHandler(h))
	log.Info("return line rejected", "id_number", "11010519491231002X", "phone", "13812345678", "line", 42)
	// Output:
	// level=INFO msg="return line rejected" id_number=110***********002X phone=138****5678 line=42
}
