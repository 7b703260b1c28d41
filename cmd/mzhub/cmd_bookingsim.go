package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/funeralhome/funeralhomesim"
	"github.com/shanghai-mca/mzhub/security/keys"
	"github.com/shanghai-mca/mzhub/security/ownerfile"
)

func init() {
	register(command{name: "bookingsim", summary: "run the reference funeral-home booking API (docs/api/booking.yaml) and print its address and key", run: runBookingSim})
}

// bookingEnvFile holds the simulator's address and the key the hub (or the
// conformance kit) signs its calls with, as shell variables (0600).
const bookingEnvFile = "booking.env"

// runBookingSim starts the reference implementation of the booking API,
// the simulator `mzhub demo` runs for its funeral homes: integrators
// compare their own implementation with it, and the conformance kit passes
// against it. The key is kept in DIR/booking.env across restarts.
func runBookingSim(ctx context.Context, env *cliEnv, args []string) int {
	fs := flag.NewFlagSet("bookingsim", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	dir := fs.String("dir", "bookingsim", "directory of booking.env (the address and the key)")
	listen := fs.String("listen", "127.0.0.1:18490", "address of the booking API")
	index := fs.Int("index", 1, "which simulated home (1..15): seeds its halls, vehicles and prices")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, `Usage: mzhub bookingsim [--dir DIR] [--listen HOST:PORT] [--index N]

Runs the reference funeral-home booking API (docs/api/booking.yaml: availability, reserve, get,
cancel; signatures checked; idempotent) until SIGINT or SIGTERM. The first start issues the key
the caller signs with and keeps it in DIR/booking.env (0600); the secret is never printed.`)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	fail := func(err error) int {
		fmt.Fprintln(env.Stderr, "mzhub bookingsim:", err)
		return 1
	}
	if *index < 1 || *index > 15 {
		return fail(fmt.Errorf("--index %d: want 1 to 15", *index))
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return fail(err)
	}
	envPath, err := filepath.Abs(filepath.Join(*dir, bookingEnvFile))
	if err != nil {
		return fail(err)
	}
	vars, err := readEnvFile(envPath)
	if err != nil {
		return fail(err)
	}
	keyID := vars["MZ_BOOKING_KEY_ID"]
	secret, err := hex.DecodeString(vars["MZ_BOOKING_SECRET_HEX"])
	if keyID == "" || err != nil || len(secret) != 32 {
		keyID = fmt.Sprintf("hub-fh%02d-%s", *index, keys.NewKID(time.Now()))
		secret = keys.Random(32)
	}
	home, err := funeralhomesim.Start(ctx, funeralhomesim.Config{Index: *index, Listen: *listen,
		Booking: funeralhomesim.Credentials{KeyID: keyID, Secret: secret}, Logger: env.Logger})
	if err != nil {
		return fail(err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = home.Close(cctx)
	}()
	var b strings.Builder
	b.WriteString("# Written by `mzhub bookingsim`: the reference booking API and the key its callers sign with.\n")
	fmt.Fprintf(&b, "MZ_BOOKING_URL=%s\nMZ_BOOKING_KEY_ID=%s\nMZ_BOOKING_SECRET_HEX=%s\n", home.URL(), keyID, hex.EncodeToString(secret))
	b.WriteString("export MZ_BOOKING_URL\nexport MZ_BOOKING_KEY_ID\nexport MZ_BOOKING_SECRET_HEX\n")
	if err := ownerfile.Write(envPath, []byte(b.String())); err != nil {
		return fail(err)
	}
	out := env.Stdout
	fmt.Fprintf(out, "mzhub bookingsim: the reference booking API of simulated funeral home %02d\n", *index)
	fmt.Fprintf(out, "  API:      %s/booking/v1/   (spec: docs/api/booking.yaml)\n", home.URL())
	fmt.Fprintf(out, "  key id:   %s   (callers sign with it: the hub, or the conformance kit)\n", keyID)
	fmt.Fprintf(out, "  secret:   MZ_BOOKING_SECRET_HEX in %s (0600; not printed)\n", envPath)
	fmt.Fprintf(out, "next: check it (or your own booking API the same way):\n")
	fmt.Fprintf(out, "  . %s\n", envPath)
	fmt.Fprintf(out, "  mzhub conformance --role funeral-home --target \"$MZ_BOOKING_URL\" --key-id \"$MZ_BOOKING_KEY_ID\" --secret-env MZ_BOOKING_SECRET_HEX --junit booking.xml\n")
	fmt.Fprintln(out, "booking simulator ready")
	<-ctx.Done()
	return 0
}

// readEnvFile reads KEY=VALUE lines (comments and export lines skipped);
// a missing file is empty.
func readEnvFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	vars := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			vars[strings.TrimPrefix(k, "export ")] = v
		}
	}
	return vars, nil
}
