// Package mask hides personal identifiers wherever a person could read them:
// logs, error messages, monitor events and the console. It is the one place
// that decides how a resident ID, an account or card number, a phone number
// or a name is shown.
//
//	IDNumber("31010119900101123X") == "310***********123X"  // region prefix + last 4
//	Account("6222021234567890123")  == "***************0123" // last 4
//	Phone("13812345678")            == "138****5678"         // 3 + 4
//	Name("张三丰")                   == "张**"                 // first character
//
// Text masks identifiers found in free text, Scan reports unmasked ones (for
// tests that grep logs), and NewHandler wraps a slog.Handler so that nothing
// written through it carries a whole identifier.
package mask
