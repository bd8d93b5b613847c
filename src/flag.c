/* flag.c: flag templates, generation, AES-256-GCM at rest, HMAC-SHA256 index.
 *
 * OpenSSL 3 EVP and one-shot HMAC() only (no deprecated HMAC_CTX). It must not
 * log, print or return key material or flags in messages, and must not
 * evaluate anything in a template. Its only I/O is the key file.
 *
 * TEMPLATE SYNTAX (the CTFd plugin re-implements this check in Python; keep
 * both exact). A template is 1..FLAG_TEMPLATE_MAX_LEN (255) bytes, each
 * printable ASCII 0x20..0x7e. It is literal text except for placeholders:
 *
 *     <hex:N>    N characters of 0-9a-f        4 bits each
 *     <alnum:N>  N characters of A-Za-z0-9     log2(62) = 5.954196310386875 bits each
 *     <lower:N>  N characters of a-z0-9        log2(36) = 5.169925001442312 bits each
 *
 * N is decimal, 1..128, without leading zeros: regex
 * <(hex|alnum|lower):([1-9][0-9]{0,2})> plus the check N <= 128. '<' always
 * opens a placeholder and '>' always closes one: neither can be a literal.
 * Nothing else is special ({{ }}, %, $ and \ are plain text).
 * A template is refused, with the 0-based byte offset ("position") of the
 * offending byte or of the placeholder's '<', when it is: empty; longer than
 * 255 bytes; has a byte outside 0x20..0x7e; has a '>' outside a placeholder;
 * has a '<' with no '>' before the next '<' or the end (unclosed); names a
 * placeholder other than hex/alnum/lower; lacks ":N"; has N that is not
 * 1..128 as above; could produce more than FLAG_MAX_LEN (255) characters
 * (literal bytes + sum of N); or carries fewer than FLAG_MIN_BITS (64) random
 * bits (sum of N * bits per character). Checks run in that order; the byte
 * check covers the whole template before the structure is parsed.
 *
 * KEY DERIVATION (the plugin derives mac the same way with hmac/hashlib):
 *   master = the 32 bytes whose 64 hex characters are the key file
 *   enc    = HMAC-SHA256(key=master, msg="ctfd-containers/v1/enc")  AES-256-GCM key
 *   mac    = HMAC-SHA256(key=master, msg="ctfd-containers/v1/mac")  lookup HMAC key
 *   key_id = first 8 bytes of HMAC-SHA256(key=master, msg="ctfd-containers/v1/id"),
 *            as 16 lowercase hex characters
 *   digest(flag) = HMAC-SHA256(key=mac, msg=flag bytes)
 *   ciphertext   = AES-256-GCM(enc, 12-byte random nonce, aad) || 16-byte tag
 * Messages are ASCII without a trailing NUL. tests/unit/test_flag.c pins the
 * outputs for master 00 01 02 .. 1f. */
#include "flag.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

/* ---- templates ------------------------------------------------------------ */

#define PLACEHOLDER_MAX_N 128

struct flag_alphabet {
    const char *name;
    const char *chars;
    unsigned size;
    double bits; /* log2(size), written out so no libm and no rounding doubt */
};

static const struct flag_alphabet ALPHABETS[] = {
    {"hex", "0123456789abcdef", 16, 4.0},
    {"alnum", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", 62,
     5.954196310386875},
    {"lower", "abcdefghijklmnopqrstuvwxyz0123456789", 36, 5.169925001442312},
};
#define N_ALPHABETS (sizeof(ALPHABETS) / sizeof(ALPHABETS[0]))

/* One piece of a template: a literal run, or a placeholder (alpha != NULL). */
struct tmpl_part {
    size_t start; /* offset of the literal or of the placeholder's '<' */
    size_t len;   /* bytes of template consumed */
    const struct flag_alphabet *alpha;
    unsigned n; /* characters the placeholder draws */
};

static int set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static const struct flag_alphabet *alphabet_find(const char *name, size_t len)
{
    for (size_t i = 0; i < N_ALPHABETS; i++)
        if (strlen(ALPHABETS[i].name) == len && memcmp(ALPHABETS[i].name, name, len) == 0)
            return &ALPHABETS[i];
    return NULL;
}

/* N: 1 to 3 digits, no leading zero, 1..128. */
static int parse_count(const char *s, size_t len, unsigned *n)
{
    if (len == 0 || len > 3 || s[0] == '0')
        return -1;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > PLACEHOLDER_MAX_N)
        return -1;
    *n = v;
    return 0;
}

/* Parse the placeholder whose '<' is at t[p]; the bytes are already known to
 * be printable ASCII. */
static int parse_placeholder(const char *t, size_t p, struct tmpl_part *part, char *err,
                             size_t errlen)
{
    size_t end = p + 1;
    while (t[end] != '\0' && t[end] != '<' && t[end] != '>')
        end++;
    if (t[end] != '>')
        return set_err(err, errlen,
                         "flag template: unclosed '<' at position %zu; a placeholder "
                         "ends with '>' and '<' cannot be a literal", p);
    const char *name = t + p + 1;
    const char *colon = memchr(name, ':', end - (p + 1));
    size_t namelen = colon != NULL ? (size_t)(colon - name) : end - (p + 1);
    part->alpha = alphabet_find(name, namelen);
    if (part->alpha == NULL)
        return set_err(err, errlen,
                         "flag template: unknown placeholder '%.*s' at position %zu; "
                         "use <hex:N>, <alnum:N> or <lower:N>",
                         (int)(namelen > 32 ? 32 : namelen), name, p);
    if (colon == NULL)
        return set_err(err, errlen,
                         "flag template: placeholder at position %zu has no ':N' "
                         "length (e.g. <%s:16>)", p, part->alpha->name);
    size_t numlen = (size_t)(t + end - (colon + 1));
    if (parse_count(colon + 1, numlen, &part->n) != 0)
        return set_err(err, errlen,
                         "flag template: length '%.*s' at position %zu must be a number "
                         "from 1 to 128", (int)(numlen > 16 ? 16 : numlen), colon + 1, p);
    part->start = p;
    part->len = end + 1 - p;
    return 0;
}

/* The next part at t[*pos]; 1 when there is one, 0 at the end, -1 on error. */
static int next_part(const char *t, size_t *pos, struct tmpl_part *part, char *err,
                     size_t errlen)
{
    size_t p = *pos;
    if (t[p] == '\0')
        return 0;
    if (t[p] == '>')
        return set_err(err, errlen,
                         "flag template: '>' at position %zu is outside a placeholder; "
                         "'<' and '>' cannot be literals", p);
    if (t[p] == '<') {
        if (parse_placeholder(t, p, part, err, errlen) != 0)
            return -1;
    } else {
        size_t n = strcspn(t + p, "<>");
        *part = (struct tmpl_part){.start = p, .len = n, .alpha = NULL, .n = 0};
    }
    /* NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult): set_err returns -1; the analyzer does not follow variadic calls */
    *pos = p + part->len;
    return 1;
}

/* Every byte printable ASCII; also bounds the length. */
static int check_bytes(const char *t, char *err, size_t errlen)
{
    size_t len = strlen(t);
    if (len == 0)
        return set_err(err, errlen, "flag template: empty; use e.g. CTF{<hex:32>}");
    if (len > FLAG_TEMPLATE_MAX_LEN)
        return set_err(err, errlen, "flag template: %zu bytes; at most %d are allowed",
                         len, FLAG_TEMPLATE_MAX_LEN);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c < 0x20 || c > 0x7e)
            return set_err(err, errlen,
                             "flag template: byte 0x%02x at position %zu is not printable "
                             "ASCII", c, i);
    }
    return 0;
}

/* Walks the whole template: *outlen is the flag length, *bits its randomness. */
static int tmpl_measure(const char *t, size_t *outlen, double *bits, char *err, size_t errlen)
{
    if (t == NULL)
        return set_err(err, errlen, "flag template: missing");
    if (check_bytes(t, err, errlen) != 0)
        return -1;
    size_t pos = 0, len = 0;
    double sum = 0.0;
    struct tmpl_part part;
    int r;
    while ((r = next_part(t, &pos, &part, err, errlen)) == 1) {
        /* NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult): set_err returns -1; the analyzer does not follow variadic calls */
        len += part.alpha != NULL ? part.n : part.len;
        sum += part.alpha != NULL ? part.n * part.alpha->bits : 0.0;
    }
    if (r < 0)
        return -1;
    *outlen = len;
    *bits = sum;
    return 0;
}

int flag_template_check(const char *tmpl, double *bits, char *err, size_t errlen)
{
    size_t len = 0;
    double sum = 0.0;
    if (tmpl_measure(tmpl, &len, &sum, err, errlen) != 0)
        return -1;
    if (len > FLAG_MAX_LEN)
        return set_err(err, errlen,
                         "flag template: a flag could be %zu characters; at most %d are "
                         "allowed", len, FLAG_MAX_LEN);
    if (sum < FLAG_MIN_BITS)
        /* Truncate to two decimals so 63.999 never prints as "64". */
        return set_err(err, errlen,
                         "flag template: only %g random bits; at least %d are required "
                         "(e.g. <hex:16>)", (double)(long)(sum * 100) / 100, FLAG_MIN_BITS);
    if (bits != NULL)
        *bits = sum;
    return 0;
}

/* ---- generation ----------------------------------------------------------- */

/* Random bytes drawn in batches; wiped when done. */
struct rng_pool {
    unsigned char buf[64];
    size_t used;
};

static int pool_byte(struct rng_pool *pool, unsigned char *b)
{
    if (pool->used == sizeof(pool->buf)) {
        if (RAND_bytes(pool->buf, (int)sizeof(pool->buf)) != 1)
            return -1;
        pool->used = 0;
    }
    *b = pool->buf[pool->used++];
    return 0;
}

/* n uniform characters of alpha: a byte at or above the largest multiple of
 * the alphabet size is redrawn, so b % size has no bias. */
static int draw_chars(struct rng_pool *pool, const struct flag_alphabet *alpha, unsigned n,
                      char *out)
{
    unsigned limit = 256 - 256 % alpha->size;
    for (unsigned i = 0; i < n; i++) {
        unsigned char b;
        do {
            if (pool_byte(pool, &b) != 0)
                return -1;
        } while (b >= limit);
        out[i] = alpha->chars[b % alpha->size];
    }
    return 0;
}

int flag_generate(const char *tmpl, char *out, size_t outlen)
{
    if (out == NULL || outlen == 0)
        return -1;
    out[0] = '\0';
    if (flag_template_check(tmpl, NULL, NULL, 0) != 0)
        return -1;
    struct rng_pool pool = {.used = sizeof(pool.buf)};
    struct tmpl_part part;
    size_t pos = 0, w = 0;
    int r = 0;
    while (next_part(tmpl, &pos, &part, NULL, 0) == 1) {
        /* NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult): set_err returns -1; the analyzer does not follow variadic calls */
        size_t n = part.alpha != NULL ? part.n : part.len;
        if (w + n >= outlen) {
            r = -1;
            break;
        }
        if (part.alpha == NULL)
            memcpy(out + w, tmpl + part.start, n);
        else if ((r = draw_chars(&pool, part.alpha, part.n, out + w)) != 0)
            break;
        w += n;
    }
    OPENSSL_cleanse(&pool, sizeof(pool));
    if (r != 0) {
        OPENSSL_cleanse(out, outlen);
        return -1;
    }
    out[w] = '\0';
    return 0;
}

/* ---- HMAC and AES-256-GCM primitives --------------------------------------- */

int flag_hmac_sha256(const unsigned char *key, size_t keylen, const unsigned char *msg,
                     size_t msglen, unsigned char out[32])
{
    unsigned int len = 0;
    if (HMAC(EVP_sha256(), key, (int)keylen, msg, msglen, out, &len) == NULL || len != 32) {
        OPENSSL_cleanse(out, 32);
        return -1;
    }
    return 0;
}

/* HMAC-SHA256 on memory we own fails only when OpenSSL cannot allocate; like
 * the arena, there is nothing sensible to continue with, and a made-up digest
 * or key would silently corrupt stored flags. */
static void hmac_or_abort(const unsigned char *key, size_t keylen, const char *msg,
                          unsigned char out[32])
{
    if (flag_hmac_sha256(key, keylen, (const unsigned char *)msg, strlen(msg), out) != 0)
        abort();
}

static EVP_CIPHER_CTX *gcm_ctx(const unsigned char key[32], const unsigned char nonce[12],
                               int enc)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        return NULL;
    /* The IV length is set before the key and IV (the order OpenSSL needs). */
    if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, FLAG_NONCE_LEN, NULL) != 1 ||
        EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc) != 1) {
        EVP_CIPHER_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* Feeds aad (NULL output: it is authenticated, not encrypted) then data. */
static int gcm_update(EVP_CIPHER_CTX *ctx, const unsigned char *aad, size_t aadlen,
                      const unsigned char *in, size_t n, unsigned char *out)
{
    int len;
    if (n > INT_MAX || aadlen > INT_MAX)
        return -1;
    if (aadlen > 0 && EVP_CipherUpdate(ctx, NULL, &len, aad, (int)aadlen) != 1)
        return -1;
    if (n > 0 && (EVP_CipherUpdate(ctx, out, &len, in, (int)n) != 1 || (size_t)len != n))
        return -1;
    return 0;
}

int flag_gcm_seal(const unsigned char key[32], const unsigned char nonce[12],
                  const unsigned char *pt, size_t n, const unsigned char *aad, size_t aadlen,
                  unsigned char *ct, unsigned char tag[16])
{
    EVP_CIPHER_CTX *ctx = gcm_ctx(key, nonce, 1);
    unsigned char fin[16]; /* GCM's final call writes nothing */
    int len, r = -1;
    if (ctx == NULL)
        return -1;
    /* The tag exists only after the final call. */
    if (gcm_update(ctx, aad, aadlen, pt, n, ct) == 0 &&
        EVP_EncryptFinal_ex(ctx, fin, &len) == 1 && len == 0 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, FLAG_TAG_LEN, tag) == 1)
        r = 0;
    EVP_CIPHER_CTX_free(ctx);
    if (r != 0 && ct != NULL)
        OPENSSL_cleanse(ct, n);
    return r;
}

int flag_gcm_open(const unsigned char key[32], const unsigned char nonce[12],
                  const unsigned char *ct, size_t n, const unsigned char *aad, size_t aadlen,
                  const unsigned char tag[16], unsigned char *pt)
{
    EVP_CIPHER_CTX *ctx = gcm_ctx(key, nonce, 0);
    unsigned char tagcopy[FLAG_TAG_LEN], fin[16]; /* GCM's final call writes nothing */
    int len, r = -1;
    if (ctx == NULL)
        return -1;
    memcpy(tagcopy, tag, sizeof(tagcopy)); /* the ctrl takes a non-const pointer */
    /* The expected tag goes in before the final call, which checks it; the
     * plaintext is written before that check, so a failure must wipe it. */
    if (gcm_update(ctx, aad, aadlen, ct, n, pt) == 0 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, FLAG_TAG_LEN, tagcopy) == 1 &&
        EVP_DecryptFinal_ex(ctx, fin, &len) == 1 && len == 0)
        r = 0;
    EVP_CIPHER_CTX_free(ctx);
    if (r != 0 && pt != NULL)
        OPENSSL_cleanse(pt, n);
    return r;
}

/* ---- keys, encryption, digest ---------------------------------------------- */

/* Lowercase hex of n bytes into 2n characters (no NUL). */
static void hex_encode(const unsigned char *p, size_t n, char *out)
{
    static const char hexdigits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexdigits[p[i] >> 4];
        out[2 * i + 1] = hexdigits[p[i] & 0x0f];
    }
}

void flag_keys_derive(const unsigned char master[32], struct flag_keys *keys)
{
    unsigned char id[32];
    hmac_or_abort(master, 32, "ctfd-containers/v1/enc", keys->enc);
    hmac_or_abort(master, 32, "ctfd-containers/v1/mac", keys->mac);
    hmac_or_abort(master, 32, "ctfd-containers/v1/id", id);
    hex_encode(id, FLAG_KEY_ID_LEN / 2, keys->key_id);
    keys->key_id[FLAG_KEY_ID_LEN] = '\0';
    OPENSSL_cleanse(id, sizeof(id));
}

int flag_encrypt(const struct flag_keys *keys, const char *flag, const char *aad,
                 unsigned char nonce[FLAG_NONCE_LEN], unsigned char *ct, size_t ctcap,
                 size_t *ctlen)
{
    if (keys == NULL || flag == NULL || aad == NULL || ct == NULL || ctlen == NULL)
        return -1;
    size_t n = strlen(flag);
    if (n > FLAG_MAX_LEN || ctcap < n + FLAG_TAG_LEN)
        return -1;
    /* A fresh random nonce per encryption: with 96 bits, reuse under one key
     * is negligible for any number of flags a CTF will ever store. */
    if (RAND_bytes(nonce, FLAG_NONCE_LEN) != 1)
        return -1;
    if (flag_gcm_seal(keys->enc, nonce, (const unsigned char *)flag, n,
                      (const unsigned char *)aad, strlen(aad), ct, ct + n) != 0)
        return -1;
    *ctlen = n + FLAG_TAG_LEN;
    return 0;
}

int flag_decrypt(const struct flag_keys *keys, const unsigned char nonce[FLAG_NONCE_LEN],
                 const unsigned char *ct, size_t ctlen, const char *aad, char *out,
                 size_t outlen)
{
    if (out == NULL || outlen == 0)
        return -1;
    size_t n = ctlen >= FLAG_TAG_LEN ? ctlen - FLAG_TAG_LEN : 0;
    int ok = keys != NULL && nonce != NULL && ct != NULL && aad != NULL &&
             ctlen >= FLAG_TAG_LEN && n <= FLAG_MAX_LEN && n < outlen &&
             flag_gcm_open(keys->enc, nonce, ct, n, (const unsigned char *)aad, strlen(aad),
                           ct + n, (unsigned char *)out) == 0 &&
             memchr(out, '\0', n) == NULL; /* a flag is text: no NUL inside */
    if (!ok) {
        OPENSSL_cleanse(out, outlen);
        return -1;
    }
    out[n] = '\0';
    return 0;
}

void flag_digest(const struct flag_keys *keys, const char *flag,
                 unsigned char out[FLAG_DIGEST_LEN])
{
    hmac_or_abort(keys->mac, sizeof(keys->mac), flag, out);
}

void flag_wipe(void *p, size_t n)
{
    if (p != NULL && n > 0)
        OPENSSL_cleanse(p, n);
}

/* ---- the key file --------------------------------------------------------- */

#define KEY_HEX_LEN 64

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Exactly 64 hex characters, then optionally one "\n". */
static int parse_key_hex(const char *buf, size_t len, unsigned char master[32])
{
    if (len != KEY_HEX_LEN && !(len == KEY_HEX_LEN + 1 && buf[KEY_HEX_LEN] == '\n'))
        return -1;
    for (size_t i = 0; i < 32; i++) {
        int hi = hexval(buf[2 * i]), lo = hexval(buf[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        master[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return -1;
        }
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Reads up to cap bytes (the whole file when it is smaller). */
static ssize_t read_upto(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    while (got < cap) {
        ssize_t r = read(fd, buf + got, cap - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* So the new name survives a crash too, not just the file's bytes. */
static void fsync_parent_dir(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    size_t n = slash == NULL ? 0 : (slash == path ? 1 : (size_t)(slash - path));
    if (n >= sizeof(dir))
        return;
    if (n == 0)
        memcpy(dir, ".", 2);
    else {
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* Writes a fresh random key as 64 hex characters and a newline, then fsyncs. */
static int key_write_new(int fd)
{
    unsigned char master[32];
    char hex[KEY_HEX_LEN + 1];
    int r = RAND_bytes(master, sizeof(master)) == 1 ? 0 : -1;
    hex_encode(master, sizeof(master), hex);
    hex[KEY_HEX_LEN] = '\n';
    if (r == 0)
        r = write_all(fd, hex, sizeof(hex)) == 0 && fsync(fd) == 0 ? 0 : -1;
    int saved = errno;
    OPENSSL_cleanse(master, sizeof(master));
    OPENSSL_cleanse(hex, sizeof(hex));
    errno = saved;
    return r;
}

/* Creates the key file when absent. The key is written to a private
 * temporary name and then link()ed into place, so the key path never shows a
 * half-written file and link's EEXIST settles a race: the loser removes its
 * own and reads the winner's. Returns 0 (ours or theirs is in place) or -1. */
static int key_create(const char *path, char *err, size_t errlen)
{
    unsigned char rnd[8];
    char suffix[2 * sizeof(rnd) + 1], tmp[4096];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return set_err(err, errlen, "key file %s: no randomness", path);
    hex_encode(rnd, sizeof(rnd), suffix);
    suffix[sizeof(suffix) - 1] = '\0';
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.new-%s", path, suffix) >= sizeof(tmp))
        return set_err(err, errlen, "key file: path too long");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return set_err(err, errlen, "key file %s: cannot create: %s", tmp, strerror(errno));
    int r = key_write_new(fd);
    int saved = errno;
    if (close(fd) != 0 && r == 0) {
        r = -1;
        saved = errno;
    }
    if (r == 0 && link(tmp, path) != 0 && errno != EEXIST) {
        r = -1;
        saved = errno;
    }
    (void)unlink(tmp);
    if (r != 0)
        return set_err(err, errlen, "key file %s: cannot write: %s", path, strerror(saved));
    fsync_parent_dir(path);
    return 0;
}

/* 0 with *fd open on a regular file only its owner (and, read-only, its group:
 * the CTFd plugin's user reads the same key) may access; -1 with err. */
static int key_open(const char *path, int *fd, char *err, size_t errlen)
{
    struct stat st;
    /* O_NONBLOCK: a FIFO planted at the path must not hang start-up. */
    *fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (*fd < 0)
        return set_err(err, errlen, "key file %s: cannot open: %s", path, strerror(errno));
    const char *why = NULL;
    if (fstat(*fd, &st) != 0) {
        why = "cannot stat it";
        st.st_mode = 0;
    } else if (!S_ISREG(st.st_mode))
        why = "not a regular file";
    else if ((st.st_mode & 037) != 0)
        why = "others have access, or the group more than read; chmod 600 (or 640) it";
    if (why != NULL) {
        close(*fd);
        return set_err(err, errlen, "key file %s: %s (mode %04o)", path, why,
                         (unsigned)(st.st_mode & 07777));
    }
    return 0;
}

/* Reads and parses the key file: 0, or -1 with err. */
static int key_read(const char *path, unsigned char master[32], char *err, size_t errlen)
{
    char buf[KEY_HEX_LEN + 2];
    int fd;
    if (key_open(path, &fd, err, errlen) != 0)
        return -1;
    ssize_t n = read_upto(fd, buf, sizeof(buf));
    int saved = errno;
    close(fd);
    int r = 0;
    if (n < 0)
        r = set_err(err, errlen, "key file %s: cannot read: %s", path, strerror(saved));
    else if (parse_key_hex(buf, (size_t)n, master) != 0)
        r = set_err(err, errlen,
                    "key file %s: malformed; it must hold exactly 64 hex characters "
                    "and an optional newline", path);
    OPENSSL_cleanse(buf, sizeof(buf));
    return r;
}

int flag_keys_load(const char *path, struct flag_keys *keys, char *err, size_t errlen)
{
    unsigned char master[32];
    struct stat st;
    if (path == NULL || keys == NULL)
        return set_err(err, errlen, "key file: no path given");
    /* lstat: a dangling symlink counts as present, so we never create a key
     * wherever it points; reading it then fails. */
    if (lstat(path, &st) != 0 && errno == ENOENT && key_create(path, err, errlen) != 0)
        return -1;
    int r = key_read(path, master, err, errlen);
    if (r == 0)
        flag_keys_derive(master, keys);
    OPENSSL_cleanse(master, sizeof(master));
    return r;
}
