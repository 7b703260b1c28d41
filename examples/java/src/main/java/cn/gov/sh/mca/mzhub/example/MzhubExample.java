package cn.gov.sh.mca.mzhub.example;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.net.URI;
import java.net.URLDecoder;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.time.Duration;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.function.Function;
import org.bouncycastle.crypto.digests.SM3Digest;
import org.bouncycastle.crypto.macs.HMac;
import org.bouncycastle.crypto.params.KeyParameter;

/**
 * A small client of the mzhub funeral partner API (docs/api/partner.yaml) in Java 17.
 *
 * <p>It signs its requests with MZ-HMAC-SM3 (docs/signing.md, BouncyCastle's SM3), pushes a hall,
 * reads it back, updates it with If-Match, then provokes every problem the spec documents that a
 * client can cause and prints each answer. It exits 1 when an answer is not the documented one.
 *
 * <p>Settings come from the environment: MZ_BASE_URL (the hub's base URL without /partner/v1; for
 * the sandbox add its prefix, https://host/sandbox), MZ_KEY_ID, MZ_SECRET_HEX and optionally
 * MZHUB_MAX_BODY_BYTES (the body limit to exceed, default 1048576).
 */
public final class MzhubExample {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final SecureRandom RANDOM = new SecureRandom();
    private static final HexFormat HEX = HexFormat.of();

    private final URI base;
    private final String keyId;
    private final byte[] secret;
    private final HttpClient http =
            HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(30)).build();
    private int passed;
    private int failed;

    MzhubExample(URI base, String keyId, byte[] secret) {
        this.base = base;
        this.keyId = keyId;
        this.secret = secret;
    }

    // --- signing (docs/signing.md) --------------------------------------------------------

    static String sm3Hex(byte[] data) {
        SM3Digest d = new SM3Digest();
        d.update(data, 0, data.length);
        byte[] out = new byte[d.getDigestSize()];
        d.doFinal(out, 0);
        return HEX.formatHex(out);
    }

    static String hmacSm3Hex(byte[] key, String message) {
        HMac mac = new HMac(new SM3Digest());
        mac.init(new KeyParameter(key));
        byte[] in = message.getBytes(StandardCharsets.UTF_8);
        mac.update(in, 0, in.length);
        byte[] out = new byte[mac.getMacSize()];
        mac.doFinal(out, 0);
        return HEX.formatHex(out);
    }

    /** Percent-encodes every byte outside RFC 3986's unreserved set (and '/' when kept). */
    static String escape(String s, boolean keepSlash) {
        StringBuilder b = new StringBuilder();
        for (byte x : s.getBytes(StandardCharsets.UTF_8)) {
            int c = x & 0xff;
            boolean unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
                    || c == '-' || c == '.' || c == '_' || c == '~';
            if (unreserved || (keepSlash && c == '/')) {
                b.append((char) c);
            } else {
                b.append('%').append(String.format("%02X", c));
            }
        }
        return b.toString();
    }

    static String canonicalQuery(String raw) {
        if (raw == null || raw.isEmpty()) {
            return "";
        }
        List<String[]> pairs = new ArrayList<>();
        for (String part : raw.split("&")) {
            if (part.isEmpty()) {
                continue;
            }
            int eq = part.indexOf('=');
            String name = eq < 0 ? part : part.substring(0, eq);
            String value = eq < 0 ? "" : part.substring(eq + 1);
            pairs.add(new String[] {
                escape(URLDecoder.decode(name, StandardCharsets.UTF_8), false),
                escape(URLDecoder.decode(value, StandardCharsets.UTF_8), false)});
        }
        pairs.sort(Comparator.<String[], String>comparing(p -> p[0]).thenComparing(p -> p[1]));
        List<String> out = new ArrayList<>();
        for (String[] p : pairs) {
            out.add(p[0] + "=" + p[1]);
        }
        return String.join("&", out);
    }

    static String newNonce() {
        byte[] b = new byte[16];
        RANDOM.nextBytes(b);
        return HEX.formatHex(b);
    }

    /** The five X-MZ-* headers for a request signed by key at unixSeconds with nonce. */
    static Map<String, String> signHeaders(String method, URI uri, byte[] body, String keyId, byte[] secret,
                                           long unixSeconds, String nonce) {
        String path = uri.getPath() == null || uri.getPath().isEmpty() ? "/" : uri.getPath();
        String contentSm3 = sm3Hex(body);
        String canonical = String.join("\n", "MZ-HMAC-SM3", method.toUpperCase(), escape(path, true),
                canonicalQuery(uri.getRawQuery()), keyId, Long.toString(unixSeconds), nonce, contentSm3);
        Map<String, String> h = new LinkedHashMap<>();
        h.put("X-MZ-Key-Id", keyId);
        h.put("X-MZ-Timestamp", Long.toString(unixSeconds));
        h.put("X-MZ-Nonce", nonce);
        h.put("X-MZ-Content-SM3", contentSm3);
        h.put("X-MZ-Signature", hmacSm3Hex(secret, canonical));
        return h;
    }

    Map<String, String> sign(String method, URI uri, byte[] body) {
        return signHeaders(method, uri, body, keyId, secret, System.currentTimeMillis() / 1000, newNonce());
    }

    // --- the client -----------------------------------------------------------------------

    /** What the hub answered; problem is the problem+json body or an empty object. */
    record Answer(int status, HttpResponse<byte[]> response, JsonNode problem) {
        String code() {
            return problem.path("code").asText("");
        }

        String header(String name) {
            return response.headers().firstValue(name).orElse("");
        }

        int retryAfter() {
            try {
                return Math.max(1, Integer.parseInt(header("Retry-After")));
            } catch (NumberFormatException e) {
                return 1;
            }
        }

        JsonNode json() throws IOException {
            return JSON.readTree(response.body());
        }
    }

    URI uri(String path) {
        String b = base.toString().replaceAll("/+$", "");
        return URI.create(b + path);
    }

    HttpRequest build(String method, URI uri, byte[] body, Map<String, String> headers) {
        HttpRequest.Builder rb = HttpRequest.newBuilder(uri).timeout(Duration.ofSeconds(30))
                .method(method, body.length == 0 ? HttpRequest.BodyPublishers.noBody()
                        : HttpRequest.BodyPublishers.ofByteArray(body));
        headers.forEach((name, value) -> {
            if (name.equalsIgnoreCase("Expect")) {
                rb.expectContinue(value.equalsIgnoreCase("100-continue")); // a header HttpClient sets itself
            } else {
                rb.setHeader(name, value);
            }
        });
        return rb.build();
    }

    static Answer answer(HttpResponse<byte[]> resp) {
        JsonNode problem = JSON.createObjectNode();
        if (resp.headers().firstValue("Content-Type").orElse("").startsWith("application/problem+json")) {
            try {
                problem = JSON.readTree(resp.body());
            } catch (IOException e) {
                throw new IllegalStateException("undecodable problem answer", e);
            }
        }
        return new Answer(resp.statusCode(), resp, problem);
    }

    /** Sends a request as it is, signed or not. */
    Answer send(String method, URI uri, byte[] body, Map<String, String> headers)
            throws IOException, InterruptedException {
        return answer(http.send(build(method, uri, body, headers), HttpResponse.BodyHandlers.ofByteArray()));
    }

    /** Signs and sends; a 429 is waited out (Retry-After) and signed afresh, at most 3 tries. */
    Answer call(String method, String path, byte[] body, Map<String, String> extra)
            throws IOException, InterruptedException {
        return call(method, path, body, extra, new LinkedHashMap<>());
    }

    /** call, also filling sent with the headers last sent. */
    Answer call(String method, String path, byte[] body, Map<String, String> extra, Map<String, String> sent)
            throws IOException, InterruptedException {
        URI u = uri(path);
        for (int attempt = 1; ; attempt++) {
            Map<String, String> h = new LinkedHashMap<>();
            if (body.length > 0) {
                h.put("Content-Type", "application/json");
            }
            h.putAll(extra);
            h.putAll(sign(method, u, body));
            Answer a = send(method, u, body, h);
            sent.clear();
            sent.putAll(h);
            if (a.status() != 429 || attempt == 3) {
                return a;
            }
            System.out.printf("     (rate limited, retrying in %ds)%n", a.retryAfter());
            Thread.sleep(a.retryAfter() * 1000L);
        }
    }

    Answer call(String method, String path) throws IOException, InterruptedException {
        return call(method, path, new byte[0], Map.of());
    }

    static byte[] hall(long version, long priceFen, int capacity) {
        ObjectNode h = JSON.createObjectNode();
        h.put("version", version);
        h.put("name", "长青厅");
        h.put("category", "large");
        h.put("capacity", capacity);
        h.put("price_fen", priceFen);
        h.put("status", "available");
        return h.toString().getBytes(StandardCharsets.UTF_8);
    }

    // --- checks ---------------------------------------------------------------------------

    /** A request that may fail before an answer. */
    interface Attempt {
        Answer run() throws Exception;
    }

    void report(boolean ok, String name, String message) {
        if (ok) {
            passed++;
        } else {
            failed++;
        }
        System.out.printf("%s %-24s %s%n", ok ? "ok  " : "FAIL", name, message);
    }

    /** Checks the documented problem: status, code and a type naming the code. */
    void expect(String name, int status, String code, Attempt attempt, Function<Answer, String> extra) {
        Answer a;
        try {
            a = attempt.run();
        } catch (Exception e) {
            report(false, name, "request failed: " + e);
            return;
        }
        List<String> why = new ArrayList<>();
        if (a.status() != status || !a.code().equals(code)) {
            why.add("want " + status + " " + code);
        }
        if (!a.code().isEmpty() && !a.problem().path("type").asText("").endsWith("/" + a.code())) {
            why.add("type " + a.problem().path("type").asText() + " does not name the code");
        }
        if (extra != null && why.isEmpty()) {
            String problem = extra.apply(a);
            if (problem != null) {
                why.add(problem);
            }
        }
        StringBuilder msg = new StringBuilder(a.status() + " " + a.code() + ": " + a.problem().path("detail").asText(""));
        for (JsonNode e : a.problem().path("errors")) {
            msg.append(" [").append(e.path("field").asText()).append(": ").append(e.path("reason").asText()).append(']');
        }
        String requestId = a.problem().path("request_id").asText("");
        if (!requestId.isEmpty()) {
            msg.append(" (request ").append(requestId).append(')'); // the id to quote to the bureau
        }
        if (!why.isEmpty()) {
            msg.append(" -- ").append(String.join("; ", why));
        }
        report(why.isEmpty(), name, msg.toString());
    }

    void expect(String name, int status, String code, Attempt attempt) {
        expect(name, status, code, attempt, null);
    }

    void pushAndRead(String path, String hallId) throws IOException, InterruptedException {
        String now = OffsetDateTime.now(ZoneOffset.ofHours(8)).truncatedTo(ChronoUnit.SECONDS)
                .format(DateTimeFormatter.ISO_OFFSET_DATE_TIME);
        ObjectNode v1 = (ObjectNode) JSON.readTree(hall(1, 280000, 300));
        v1.put("updated_at", now);
        Answer a = call("PUT", path, v1.toString().getBytes(StandardCharsets.UTF_8), Map.of());
        if (a.status() != 200) {
            throw new IllegalStateException("push: " + a.status() + " " + a.code() + " " + a.problem().path("detail").asText());
        }
        report(true, "push", "PUT " + path + " version 1: 200, ETag " + a.header("ETag"));

        a = call("GET", path);
        if (a.status() != 200) {
            throw new IllegalStateException("read back: " + a.status() + " " + a.code());
        }
        JsonNode rec = a.json();
        if (!rec.path("id").asText().equals(hallId) || rec.path("version").asLong() != 1
                || !rec.path("data").path("name").asText().equals("长青厅")
                || rec.path("data").path("price_fen").asLong() != 280000) {
            throw new IllegalStateException("read back " + path + ": got " + rec);
        }
        String etag = a.header("ETag");
        report(true, "read back", "GET " + path + ": version " + rec.path("version").asLong() + ", revision "
                + rec.path("revision").asLong() + ", " + rec.path("data").path("name").asText() + " "
                + rec.path("data").path("price_fen").asLong() + " fen");

        a = call("PUT", path, hall(2, 300000, 300), Map.of("If-Match", etag));
        if (a.status() != 200) {
            throw new IllegalStateException("update with If-Match " + etag + ": " + a.status() + " " + a.code());
        }
        report(true, "update", "PUT " + path + " version 2 with If-Match " + etag + ": 200, ETag " + a.header("ETag"));

        a = call("PUT", path, hall(2, 300000, 300), Map.of()); // the same version and content again
        report(a.status() == 200, "idempotent resend", "PUT " + path + " version 2 again: " + a.status());

        // An incremental read: the halls stored in the last hour ("+08:00" escaped; the query is signed).
        String since = OffsetDateTime.now(ZoneOffset.ofHours(8)).minusHours(1).truncatedTo(ChronoUnit.SECONDS)
                .format(DateTimeFormatter.ISO_OFFSET_DATE_TIME);
        String query = "page_size=200&updated_since=" + URLEncoder.encode(since, StandardCharsets.UTF_8);
        a = call("GET", "/partner/v1/halls?" + query);
        if (a.status() != 200) {
            throw new IllegalStateException("list: " + a.status() + " " + a.code());
        }
        JsonNode items = a.json().path("items");
        boolean found = false;
        for (JsonNode it : items) {
            found |= it.path("id").asText().equals(hallId) && it.path("version").asLong() == 2;
        }
        report(found, "list", "GET /partner/v1/halls?" + query + ": " + items.size() + " halls, " + hallId
                + " at version 2 among them: " + found);
    }

    void provoke(String path, int limit) {
        URI u = uri(path);
        byte[] valid = hall(3, 300000, 300);
        Map<String, String> jsonType = Map.of("Content-Type", "application/json");

        // Authentication (docs/signing.md).
        expect("signature_missing", 401, "signature_missing", () -> send("PUT", u, valid, jsonType));
        expect("signature_invalid", 401, "signature_invalid", () -> {
            Map<String, String> h = new LinkedHashMap<>(jsonType);
            h.putAll(sign("PUT", u, valid));
            byte[] tampered = new String(valid, StandardCharsets.UTF_8).replace("300000", "000001")
                    .getBytes(StandardCharsets.UTF_8); // the body changed after signing
            return send("PUT", u, tampered, h);
        });
        expect("timestamp_expired", 401, "timestamp_expired", () -> {
            Map<String, String> h = new LinkedHashMap<>(jsonType);
            h.putAll(signHeaders("PUT", u, valid, keyId, secret, System.currentTimeMillis() / 1000 - 3600, newNonce()));
            return send("PUT", u, valid, h);
        });
        expect("unknown_key", 401, "unknown_key", () -> {
            Map<String, String> h = new LinkedHashMap<>(jsonType);
            h.putAll(signHeaders("PUT", u, valid, "no-such-key-" + newNonce().substring(0, 8), secret,
                    System.currentTimeMillis() / 1000, newNonce()));
            return send("PUT", u, valid, h);
        });
        expect("nonce_reused", 401, "nonce_reused", () -> {
            Map<String, String> h = new LinkedHashMap<>();
            Answer first = call("GET", path, new byte[0], Map.of(), h);
            if (first.status() != 200) {
                throw new IllegalStateException("the first send answered " + first.status());
            }
            return send("GET", u, new byte[0], h); // the same signed request again: a replay
        });

        // The request itself.
        expect("bad_path", 400, "bad_path", () -> {
            URI bad = uri(path.replace("/halls/", "/halls//"));
            return send("GET", bad, new byte[0], sign("GET", bad, new byte[0]));
        });
        expect("headers_too_large", 431, "headers_too_large",
                () -> call("GET", path, new byte[0], Map.of("X-Padding", "a".repeat(64 << 10))));
        expect("body_too_large", 413, "body_too_large", () -> {
            String big = "{\"version\":3,\"description\":\"" + "x".repeat(limit) + "\"}";
            // Sent whole, as the Python example does: the hub refuses by
            // Content-Length without reading it. (With Expect: 100-continue,
            // which Go's client handles, OpenJDK 17.0.15's HttpClient waited
            // forever for a 100 that the hub, answering 413 at once, never
            // sends.)
            return call("PUT", path, big.getBytes(StandardCharsets.UTF_8), Map.of());
        });
        expect("unsupported_media_type", 415, "unsupported_media_type",
                () -> call("PUT", path, valid, Map.of("Content-Type", "text/plain")));
        expect("bad_json", 400, "bad_json",
                () -> call("PUT", path, "{\"version\":3,".getBytes(StandardCharsets.UTF_8), Map.of()));
        expect("validation_failed", 422, "validation_failed", () -> call("PUT", path, hall(3, -1, 300), Map.of()), a -> {
            for (JsonNode e : a.problem().path("errors")) {
                if (e.path("field").asText().equals("/price_fen")) {
                    return null;
                }
            }
            return "no error names the JSON pointer /price_fen: " + a.problem().path("errors");
        });
        expect("not_found", 404, "not_found", () -> call("GET", "/partner/v1/halls/H-NONE-" + newNonce().substring(0, 8)));
        expect("method_not_allowed", 405, "method_not_allowed", () -> call("POST", path, valid, Map.of()),
                a -> a.header("Allow").isEmpty() ? "no Allow header" : null);
        expect("forbidden", 403, "forbidden", () -> {
            String burial = "{\"version\":1,\"deceased_name\":\"张三\",\"burial_date\":\"2026-11-27\","
                    + "\"burial_type\":\"tree\",\"plot_code\":\"A-1\"}";
            return call("PUT", "/partner/v1/burials/B-1", burial.getBytes(StandardCharsets.UTF_8), Map.of());
        });

        // Versions and concurrency (the hall is at version 2).
        expect("stale_version", 409, "stale_version", () -> call("PUT", path, hall(1, 280000, 300), Map.of()));
        expect("version_conflict", 409, "version_conflict", () -> call("PUT", path, hall(2, 300000, 250), Map.of()));
        expect("precondition_failed", 412, "precondition_failed",
                () -> call("PUT", path, valid, Map.of("If-Match", "\"999999\"")));
        expect("idempotency_key_reused", 422, "idempotency_key_reused", () -> {
            Map<String, String> key = Map.of("Idempotency-Key", "java-example-" + newNonce());
            Answer first = call("PUT", path, valid, key);
            if (first.status() != 200) {
                throw new IllegalStateException("the first push with the key answered " + first.status());
            }
            Answer again = call("PUT", path, valid, key);
            if (again.status() != 200 || !again.header("Idempotent-Replayed").equals("true")) {
                throw new IllegalStateException("the same request with the key: " + again.status()
                        + ", Idempotent-Replayed '" + again.header("Idempotent-Replayed") + "'; want a replay");
            }
            return call("PUT", path, hall(4, 310000, 300), key);
        });

        rateLimited(path);
    }

    /** Reads 8 at a time until the hub answers 429, then honours Retry-After and reads once more. */
    void rateLimited(String path) {
        URI u = uri(path);
        expect("rate_limited", 429, "rate_limited", () -> {
            for (int round = 0; round < 60; round++) {
                List<CompletableFuture<HttpResponse<byte[]>>> inFlight = new ArrayList<>();
                for (int i = 0; i < 8; i++) {
                    HttpRequest req = build("GET", u, new byte[0], sign("GET", u, new byte[0]));
                    inFlight.add(http.sendAsync(req, HttpResponse.BodyHandlers.ofByteArray()));
                }
                Answer limited = null;
                for (CompletableFuture<HttpResponse<byte[]>> f : inFlight) {
                    Answer a = answer(f.join());
                    if (a.status() != 200 && a.status() != 429) {
                        throw new IllegalStateException("a read answered " + a.status() + " " + a.code());
                    }
                    if (a.status() == 429 && limited == null) {
                        limited = a;
                    }
                }
                if (limited != null) {
                    return limited;
                }
            }
            throw new IllegalStateException("480 reads were never rate limited");
        }, a -> {
            String value = a.header("Retry-After");
            if (!value.matches("[0-9]+") || Integer.parseInt(value) < 1) {
                return "Retry-After '" + value + "': want whole seconds";
            }
            try {
                System.out.printf("     (waiting Retry-After %ss)%n", value);
                Thread.sleep(Integer.parseInt(value) * 1000L);
                Answer after = call("GET", path);
                return after.status() == 200 ? null : "after Retry-After the read answered " + after.status();
            } catch (IOException | InterruptedException e) {
                return "the read after Retry-After failed: " + e;
            }
        });
    }

    public static void main(String[] args) {
        System.exit(run());
    }

    static int run() {
        String url = System.getenv("MZ_BASE_URL");
        String keyId = System.getenv("MZ_KEY_ID");
        String secretHex = System.getenv("MZ_SECRET_HEX");
        if (url == null || keyId == null || secretHex == null) {
            System.err.println("set MZ_BASE_URL, MZ_KEY_ID and MZ_SECRET_HEX (the partner's key id and its 64-hex-character secret)");
            return 2;
        }
        byte[] secret;
        int limit;
        try {
            secret = HEX.parseHex(secretHex);
            limit = Integer.parseInt(System.getenv().getOrDefault("MZHUB_MAX_BODY_BYTES", "1048576"));
        } catch (IllegalArgumentException e) {
            System.err.println("MZ_SECRET_HEX must be hex and MZHUB_MAX_BODY_BYTES a number: " + e.getMessage());
            return 2;
        }
        MzhubExample ex = new MzhubExample(URI.create(url), keyId, secret);
        String hallId = "H-JAVA-" + newNonce().substring(0, 8);
        String path = "/partner/v1/halls/" + hallId;
        try {
            ex.pushAndRead(path, hallId);
        } catch (Exception e) {
            System.out.println("FAIL push and read back: " + e.getMessage());
            return 1;
        }
        ex.provoke(path, limit);
        System.out.printf("examples/java: %d answers as documented, %d not%n", ex.passed, ex.failed);
        return ex.failed > 0 ? 1 : 0;
    }
}
