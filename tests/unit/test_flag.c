/* test_flag.c: flag templates, generation, AES-256-GCM, HMAC, key derivation
 * and the key file.
 *
 * Known answers come from the GCM spec (McGrew & Viega, test cases 13 and 16)
 * and RFC 4231; the key-derivation outputs were computed independently with
 * Python's hmac/hashlib (the CTFd plugin's side). Key-file cases use a fresh
 * directory under $TMPDIR; nothing here sleeps or needs the network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "flag.h"

/* ---- helpers -------------------------------------------------------------- */

static size_t unhex(const char *hex, unsigned char *out, size_t cap)
{
    size_t n = strlen(hex) / 2;
    assert_true(n <= cap);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (unsigned char)v;
    }
    return n;
}

static void tohex(const unsigned char *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", p[i]);
}

static void assert_hex(const unsigned char *p, size_t n, const char *want)
{
    char got[2 * 256 + 1];
    assert_true(n <= 256);
    tohex(p, n, got);
    assert_string_equal(got, want);
}

static int all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return 0;
    return 1;
}

/* ---- AES-256-GCM: the GCM spec ------------------------------------------- */

static void test_gcm_spec_case16(void **state)
{
    unsigned char key[32], iv[12], pt[64], aad[20], ct[64], tag[16], back[64];
    unhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", key, 32);
    unhex("cafebabefacedbaddecaf888", iv, 12);
    size_t n = unhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
                     "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
                     pt, sizeof(pt));
    size_t aadlen = unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2", aad, sizeof(aad));
    assert_int_equal(n, 60);
    assert_int_equal(flag_gcm_seal(key, iv, pt, n, aad, aadlen, ct, tag), 0);
    assert_hex(ct, n,
               "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
               "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662");
    assert_hex(tag, 16, "76fc6ece0f4e1768cddf8853bb2d551b");
    assert_int_equal(flag_gcm_open(key, iv, ct, n, aad, aadlen, tag, back), 0);
    assert_memory_equal(back, pt, n);
}

static void test_gcm_spec_case13_empty(void **state)
{
    unsigned char key[32] = {0}, iv[12] = {0}, ct[1], tag[16], pt[1];
    assert_int_equal(flag_gcm_seal(key, iv, (const unsigned char *)"", 0, NULL, 0, ct, tag), 0);
    assert_hex(tag, 16, "530f8afbc74536b9a963b4f1c4cb738b");
    assert_int_equal(flag_gcm_open(key, iv, ct, 0, NULL, 0, tag, pt), 0);
    tag[0] ^= 1;
    assert_int_equal(flag_gcm_open(key, iv, ct, 0, NULL, 0, tag, pt), -1);
}

/* ---- HMAC-SHA256: RFC 4231 --------------------------------------------------- */

static void test_hmac_rfc4231_case1(void **state)
{
    unsigned char key[20], out[32];
    memset(key, 0x0b, sizeof(key));
    assert_int_equal(flag_hmac_sha256(key, sizeof(key), (const unsigned char *)"Hi There", 8, out),
                     0);
    assert_hex(out, 32, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
}

static void test_hmac_rfc4231_case2(void **state)
{
    static const char msg[] = "what do ya want for nothing?";
    unsigned char out[32];
    assert_int_equal(flag_hmac_sha256((const unsigned char *)"Jefe", 4,
                                      (const unsigned char *)msg, strlen(msg), out),
                     0);
    assert_hex(out, 32, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

static void test_hmac_rfc4231_case6(void **state)
{
    static const char msg[] = "Test Using Larger Than Block-Size Key - Hash Key First";
    unsigned char key[131], out[32];
    memset(key, 0xaa, sizeof(key));
    assert_int_equal(
        flag_hmac_sha256(key, sizeof(key), (const unsigned char *)msg, strlen(msg), out), 0);
    assert_hex(out, 32, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

/* ---- key derivation: the table the plugin tests against -------------------- */

/* master = 00 01 02 .. 1f; outputs computed with Python hmac/hashlib. */
#define KDF_MASTER "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KDF_ENC "5b5f64328f1a90cdd3a49f0e61a3bff140a11dc98c2127d914fd3fe08a456e56"
#define KDF_MAC "c08fda43e947a644ca8a2f23ac181cb49fb70c838e43948e95579e581ba1b6ee"
#define KDF_KEY_ID "e1b3de68301a7b28"
#define KDF_DIGEST_CTF_TEST "ddbe61c56da9ceddd2a3b30e55140a093061f9bd92c787b42aa660f502692d70"

static void fixed_keys(struct flag_keys *keys)
{
    unsigned char master[32];
    unhex(KDF_MASTER, master, sizeof(master));
    flag_keys_derive(master, keys);
}

static void test_key_derivation_vectors(void **state)
{
    struct flag_keys keys;
    unsigned char d[FLAG_DIGEST_LEN];
    fixed_keys(&keys);
    assert_hex(keys.enc, 32, KDF_ENC);
    assert_hex(keys.mac, 32, KDF_MAC);
    assert_string_equal(keys.key_id, KDF_KEY_ID);
    flag_digest(&keys, "CTF{test}", d);
    assert_hex(d, FLAG_DIGEST_LEN, KDF_DIGEST_CTF_TEST);
}

/* ---- encryption ------------------------------------------------------------ */

struct sealed {
    unsigned char nonce[FLAG_NONCE_LEN];
    unsigned char ct[FLAG_CIPHERTEXT_MAX];
    size_t ctlen;
};

static void seal(const struct flag_keys *keys, const char *flag, const char *aad,
                 struct sealed *s)
{
    assert_int_equal(flag_encrypt(keys, flag, aad, s->nonce, s->ct, sizeof(s->ct), &s->ctlen),
                     0);
    assert_int_equal(s->ctlen, strlen(flag) + FLAG_TAG_LEN);
}

static void test_encrypt_roundtrip(void **state)
{
    struct flag_keys keys;
    struct sealed a, b;
    char out[FLAG_MAX_LEN + 1];
    char longest[FLAG_MAX_LEN + 1];
    fixed_keys(&keys);
    seal(&keys, "CTF{round trip}", "42", &a);
    seal(&keys, "CTF{round trip}", "42", &b);
    /* A fresh nonce each time: same flag, different ciphertext. */
    assert_memory_not_equal(a.nonce, b.nonce, FLAG_NONCE_LEN);
    assert_memory_not_equal(a.ct, b.ct, a.ctlen);
    assert_int_equal(flag_decrypt(&keys, a.nonce, a.ct, a.ctlen, "42", out, sizeof(out)), 0);
    assert_string_equal(out, "CTF{round trip}");
    memset(longest, 'x', FLAG_MAX_LEN);
    longest[FLAG_MAX_LEN] = '\0';
    seal(&keys, longest, "7", &a);
    assert_int_equal(flag_decrypt(&keys, a.nonce, a.ct, a.ctlen, "7", out, sizeof(out)), 0);
    assert_string_equal(out, longest);
}

static void test_encrypt_refuses_bad_sizes(void **state)
{
    struct flag_keys keys;
    unsigned char nonce[FLAG_NONCE_LEN], ct[FLAG_CIPHERTEXT_MAX + 1];
    char toolong[FLAG_MAX_LEN + 2];
    size_t ctlen;
    fixed_keys(&keys);
    memset(toolong, 'x', FLAG_MAX_LEN + 1);
    toolong[FLAG_MAX_LEN + 1] = '\0';
    assert_int_equal(flag_encrypt(&keys, toolong, "1", nonce, ct, sizeof(ct), &ctlen), -1);
    assert_int_equal(flag_encrypt(&keys, "CTF{x}", "1", nonce, ct, 6 + FLAG_TAG_LEN - 1, &ctlen),
                     -1);
}

/* Decrypt must fail and leave out all zero. */
static void assert_decrypt_fails(const struct flag_keys *keys, const struct sealed *s,
                                 const char *aad)
{
    char out[FLAG_MAX_LEN + 1];
    memset(out, 'X', sizeof(out));
    assert_int_equal(flag_decrypt(keys, s->nonce, s->ct, s->ctlen, aad, out, sizeof(out)), -1);
    assert_true(all_zero(out, sizeof(out)));
}

static void test_decrypt_tampered_fails_and_wipes(void **state)
{
    struct flag_keys keys, other;
    struct sealed s, t;
    fixed_keys(&keys);
    seal(&keys, "CTF{do not leak}", "17", &s);
    t = s;
    t.ct[0] ^= 0x01; /* ciphertext */
    assert_decrypt_fails(&keys, &t, "17");
    t = s;
    t.ct[s.ctlen - 1] ^= 0x80; /* tag */
    assert_decrypt_fails(&keys, &t, "17");
    t = s;
    t.nonce[FLAG_NONCE_LEN - 1] ^= 0x01; /* nonce */
    assert_decrypt_fails(&keys, &t, "17");
    assert_decrypt_fails(&keys, &s, "18"); /* aad: another row */
    assert_decrypt_fails(&keys, &s, "");
    t = s;
    t.ctlen -= 1; /* truncated */
    assert_decrypt_fails(&keys, &t, "17");
    t.ctlen = FLAG_TAG_LEN - 1; /* shorter than a tag */
    assert_decrypt_fails(&keys, &t, "17");
    unsigned char master[32];
    memset(master, 0x42, sizeof(master));
    flag_keys_derive(master, &other); /* another key */
    assert_decrypt_fails(&other, &s, "17");
}

static void test_decrypt_small_output_wipes(void **state)
{
    struct flag_keys keys;
    struct sealed s;
    char out[8];
    fixed_keys(&keys);
    seal(&keys, "CTF{longer than 8}", "1", &s);
    memset(out, 'X', sizeof(out));
    assert_int_equal(flag_decrypt(&keys, s.nonce, s.ct, s.ctlen, "1", out, sizeof(out)), -1);
    assert_true(all_zero(out, sizeof(out)));
}

/* ---- templates ------------------------------------------------------------- */

#define LOG2_62 5.954196310386875
#define LOG2_36 5.169925001442312

static void test_templates_good(void **state)
{
    static const struct {
        const char *tmpl;
        double bits;
    } cases[] = {
        {"<hex:16>", 64},
        {"CTF{<hex:32>}", 128},
        {"<alnum:11>", 11 * LOG2_62},
        {"<lower:13>", 13 * LOG2_36},
        {"flag{<lower:8>_<alnum:8>_<hex:4>}", 8 * LOG2_36 + 8 * LOG2_62 + 16},
        {"{{7*7}}%s%n$x\\n<hex:16>", 64}, /* all literal: nothing is evaluated */
        {"CTF <hex:8> and <hex:8> ", 64},
        {"<hex:128><hex:127>", 1020},     /* a 255-character flag */
        {"<alnum:128>", 128 * LOG2_62},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        double bits = -1;
        char err[256] = "";
        int r = flag_template_check(cases[i].tmpl, &bits, err, sizeof(err));
        if (r != 0)
            fail_msg("%s refused: %s", cases[i].tmpl, err);
        if (bits < cases[i].bits - 1e-9 || bits > cases[i].bits + 1e-9)
            fail_msg("%s: %f bits, want %f", cases[i].tmpl, bits, cases[i].bits);
    }
}

static void test_templates_bad(void **state)
{
    static const struct {
        const char *tmpl;
        const char *reason;
    } cases[] = {
        {"CTF{<hex:15>}", "only 60 random bits; at least 64 are required (e.g. <hex:16>)"},
        {"CTF{<py:4>}", "unknown placeholder 'py' at position 4; use <hex:N>, <alnum:N> or "
                        "<lower:N>"},
        {"CTF{{7*7}}", "only 0 random bits"},
        {"<alnum:10>", "only 59.54 random bits"},
        {"", "empty"},
        {"<", "unclosed '<' at position 0"},
        {"CTF{<hex:32}", "unclosed '<' at position 4"},
        {"<hex:16<hex:16>", "unclosed '<' at position 0"},
        {"<hex:16>>", "'>' at position 8 is outside a placeholder"},
        {"a>b<hex:16>", "'>' at position 1"},
        {"<hex:0>", "length '0' at position 0 must be a number from 1 to 128"},
        {"<hex:129>", "length '129' at position 0 must be a number from 1 to 128"},
        {"<hex:016>", "length '016'"},
        {"<hex:>", "length '' at position 0"},
        {"<hex:16x>", "length '16x'"},
        {"<hex:1000>", "length '1000'"},
        {"<hex:-16>", "length '-16'"},
        {"<hex>", "placeholder at position 0 has no ':N' length (e.g. <hex:16>)"},
        {"<HEX:16>", "unknown placeholder 'HEX' at position 0"},
        {"<>", "unknown placeholder '' at position 0"},
        {"<{{7*7}}:16>", "unknown placeholder '{{7*7}}'"},
        {"CTF{\xc3\xa9<hex:16>}", "byte 0xc3 at position 4 is not printable ASCII"},
        {"CTF{\t<hex:16>}", "byte 0x09 at position 4"},
        {"<hex:16>\n", "byte 0x0a at position 8"},
        {"<hex:16>\x7f", "byte 0x7f at position 8"},
        {"<hex:128><hex:128>", "a flag could be 256 characters; at most 255 are allowed"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        double bits = -1;
        char err[256] = "";
        if (flag_template_check(cases[i].tmpl, &bits, err, sizeof(err)) != -1)
            fail_msg("template %zu accepted", i);
        if (strstr(err, cases[i].reason) == NULL)
            fail_msg("template %zu: reason \"%s\", want \"%s\"", i, err, cases[i].reason);
        assert_non_null(strstr(err, "flag template: "));
        assert_null(strchr(err, '\n')); /* one line */
        assert_true(bits == -1);         /* untouched on failure */
    }
}

static void test_template_length_limits(void **state)
{
    char t[FLAG_TEMPLATE_MAX_LEN + 2];
    char err[256];
    /* 255 bytes: literal padding then <hex:16>; the flag is 255 - 8 + 16 long. */
    memset(t, 'a', sizeof(t));
    memcpy(t + FLAG_TEMPLATE_MAX_LEN - 8 - 8, "<hex:16>", 8);
    t[FLAG_TEMPLATE_MAX_LEN - 8] = '\0'; /* 247 bytes -> 255 characters */
    assert_int_equal(flag_template_check(t, NULL, err, sizeof(err)), 0);
    memset(t, 'a', sizeof(t));
    memcpy(t, "<hex:16>", 8);
    t[FLAG_TEMPLATE_MAX_LEN - 8 + 1] = '\0'; /* 248 bytes -> 256 characters */
    assert_int_equal(flag_template_check(t, NULL, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "could be 256 characters"));
    memset(t, 'a', sizeof(t));
    t[FLAG_TEMPLATE_MAX_LEN + 1] = '\0'; /* 256 bytes */
    assert_int_equal(flag_template_check(t, NULL, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "256 bytes; at most 255 are allowed"));
    assert_int_equal(flag_template_check(NULL, NULL, err, sizeof(err)), -1);
    /* err may be NULL or tiny: still refused, never overrun. */
    assert_int_equal(flag_template_check("<py:4>", NULL, NULL, 0), -1);
    assert_int_equal(flag_template_check("<py:4>", NULL, err, 4), -1);
    assert_string_equal(err, "fla");
}

/* ---- generation ------------------------------------------------------------ */

static const char *alphabet_of(const char *name, size_t len)
{
    if (len == 3 && memcmp(name, "hex", 3) == 0)
        return "0123456789abcdef";
    if (len == 5 && memcmp(name, "alnum", 5) == 0)
        return "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    if (len == 5 && memcmp(name, "lower", 5) == 0)
        return "abcdefghijklmnopqrstuvwxyz0123456789";
    return NULL;
}

/* An independent reading of a (valid) template: does out have its shape? */
static int matches(const char *t, const char *out)
{
    while (*t != '\0') {
        if (*t != '<') {
            if (*out++ != *t++)
                return 0;
            continue;
        }
        const char *colon = strchr(t, ':'), *close = strchr(t, '>');
        const char *alpha = alphabet_of(t + 1, (size_t)(colon - t - 1));
        long n = strtol(colon + 1, NULL, 10);
        if (alpha == NULL)
            return 0;
        for (long i = 0; i < n; i++, out++)
            if (*out == '\0' || strchr(alpha, *out) == NULL)
                return 0;
        t = close + 1;
    }
    return *out == '\0';
}

static void test_generate_shape(void **state)
{
    static const char *tmpls[] = {
        "CTF{<hex:32>}", "flag{<lower:8>_<alnum:8>_<hex:4>}", "{{7*7}}<hex:16>",
        "<alnum:128><hex:127>", "<lower:13>",
    };
    for (size_t i = 0; i < sizeof(tmpls) / sizeof(tmpls[0]); i++) {
        char out[FLAG_MAX_LEN + 1];
        assert_int_equal(flag_generate(tmpls[i], out, sizeof(out)), 0);
        if (!matches(tmpls[i], out))
            fail_msg("%s gave %s", tmpls[i], out);
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static void test_generate_distinct(void **state)
{
    enum { N = 1000, LEN = 4 + 32 + 1 + 1 };
    char(*flags)[LEN] = calloc(N, LEN);
    assert_non_null(flags);
    for (size_t i = 0; i < N; i++) {
        char out[FLAG_MAX_LEN + 1];
        assert_int_equal(flag_generate("CTF{<hex:32>}", out, sizeof(out)), 0);
        assert_int_equal(strlen(out), LEN - 1);
        assert_true(matches("CTF{<hex:32>}", out));
        memcpy(flags[i], out, LEN);
    }
    qsort(flags, N, LEN, cmp_str);
    for (size_t i = 1; i < N; i++)
        assert_string_not_equal(flags[i - 1], flags[i]);
    free(flags);
}

/* Only the alphabet's characters, and (over 6,400 draws) every one of them:
 * a missing character would mean a broken mapping, not bad luck (p < 1e-40). */
static void check_alphabet_coverage(const char *tmpl, const char *alpha)
{
    int seen[256] = {0};
    for (int round = 0; round < 50; round++) {
        char out[FLAG_MAX_LEN + 1];
        assert_int_equal(flag_generate(tmpl, out, sizeof(out)), 0);
        assert_int_equal(strlen(out), 128);
        for (const char *p = out; *p != '\0'; p++) {
            if (strchr(alpha, *p) == NULL)
                fail_msg("%s produced '%c'", tmpl, *p);
            seen[(unsigned char)*p] = 1;
        }
    }
    for (const char *p = alpha; *p != '\0'; p++)
        if (!seen[(unsigned char)*p])
            fail_msg("%s never produced '%c'", tmpl, *p);
}

static void test_generate_alphabets(void **state)
{
    check_alphabet_coverage("<alnum:128>", alphabet_of("alnum", 5));
    check_alphabet_coverage("<lower:128>", alphabet_of("lower", 5));
    check_alphabet_coverage("<hex:128>", alphabet_of("hex", 3));
}

static void test_generate_refuses(void **state)
{
    char out[FLAG_MAX_LEN + 1], small[10];
    memset(out, 'X', sizeof(out));
    assert_int_equal(flag_generate("CTF{<hex:15>}", out, sizeof(out)), -1);
    assert_int_equal(out[0], '\0');
    assert_int_equal(flag_generate("<py:16>", out, sizeof(out)), -1);
    assert_int_equal(flag_generate(NULL, out, sizeof(out)), -1);
    memset(small, 'X', sizeof(small));
    assert_int_equal(flag_generate("<hex:16>", small, sizeof(small)), -1);
    assert_true(all_zero(small, sizeof(small)));
    assert_int_equal(flag_generate("<hex:16>", small, 0), -1);
}

/* ---- the key file ---------------------------------------------------------- */

struct keydir {
    char dir[256];
    char path[300];
};

static int keydir_setup(void **state)
{
    struct keydir *k = calloc(1, sizeof(*k));
    const char *tmp = getenv("TMPDIR");
    if (k == NULL)
        return -1;
    snprintf(k->dir, sizeof(k->dir), "%s/test_flag.XXXXXX", tmp != NULL ? tmp : "/tmp");
    if (mkdtemp(k->dir) == NULL) {
        free(k);
        return -1;
    }
    snprintf(k->path, sizeof(k->path), "%s/flag.key", k->dir);
    *state = k;
    return 0;
}

static int keydir_teardown(void **state)
{
    struct keydir *k = *state;
    (void)unlink(k->path);
    (void)rmdir(k->path); /* the directory case */
    int r = rmdir(k->dir);
    free(k);
    return r;
}

static void write_file(const char *path, const char *content, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    assert_int_equal(fchmod(fd, mode), 0); /* past the umask */
    close(fd);
}

static void test_keyfile_created_0600(void **state)
{
    struct keydir *k = *state;
    struct flag_keys a, b;
    struct stat st;
    char err[512] = "", buf[128];
    assert_int_equal(flag_keys_load(k->path, &a, err, sizeof(err)), 0);
    assert_int_equal(lstat(k->path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_size, 65);
    int fd = open(k->path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, buf, sizeof(buf)), 65);
    close(fd);
    assert_int_equal(buf[64], '\n');
    for (int i = 0; i < 64; i++)
        assert_non_null(strchr("0123456789abcdef", buf[i]));
    /* The second load reads the same key. */
    assert_int_equal(flag_keys_load(k->path, &b, err, sizeof(err)), 0);
    assert_memory_equal(&a, &b, sizeof(a));
    assert_int_equal(strlen(a.key_id), FLAG_KEY_ID_LEN);
}

static void test_keyfile_reads_given_key(void **state)
{
    struct keydir *k = *state;
    struct flag_keys keys;
    char err[512] = "";
    write_file(k->path, KDF_MASTER "\n", 0600);
    assert_int_equal(flag_keys_load(k->path, &keys, err, sizeof(err)), 0);
    assert_string_equal(keys.key_id, KDF_KEY_ID);
    assert_hex(keys.mac, 32, KDF_MAC);
    write_file(k->path, KDF_MASTER, 0400); /* no newline, read-only: fine */
    assert_int_equal(flag_keys_load(k->path, &keys, err, sizeof(err)), 0);
    assert_hex(keys.enc, 32, KDF_ENC);
}

static void test_keyfile_refuses_0644(void **state)
{
    struct keydir *k = *state;
    struct flag_keys keys;
    char err[512] = "";
    write_file(k->path, KDF_MASTER "\n", 0644);
    assert_int_equal(flag_keys_load(k->path, &keys, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "others have access"));
    assert_null(strstr(err, KDF_MASTER)); /* never the key */
    write_file(k->path, KDF_MASTER "\n", 0660); /* group may read, never write */
    assert_int_equal(flag_keys_load(k->path, &keys, err, sizeof(err)), -1);
    write_file(k->path, KDF_MASTER "\n", 0602);
    assert_int_equal(flag_keys_load(k->path, &keys, err, sizeof(err)), -1);
    /* 0640 is allowed: the CTFd plugin's user reads the key through the group. */
    write_file(k->path, KDF_MASTER "\n", 0640);
    assert_int_equal(flag_keys_load(k->path, &keys, err, sizeof(err)), 0);
}

static void test_keyfile_refuses_malformed(void **state)
{
    static const char *bad[] = {
        "",
        "00",
        KDF_MASTER "\n\n",
        KDF_MASTER "00\n",
        " " KDF_MASTER,
        KDF_MASTER "\r\n",
        "g00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1\n",
    };
    struct keydir *k = *state;
    struct flag_keys keys;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[512] = "";
        write_file(k->path, bad[i], 0600);
        if (flag_keys_load(k->path, &keys, err, sizeof(err)) != -1)
            fail_msg("malformed key %zu accepted", i);
        assert_non_null(strstr(err, "malformed"));
        assert_null(strstr(err, "0102030405")); /* no key material echoed */
    }
}

static void test_keyfile_refuses_directory(void **state)
{
    struct keydir *k = *state;
    struct flag_keys keys;
    char err[512] = "";
    assert_int_equal(mkdir(k->path, 0700), 0);
    assert_int_equal(flag_keys_load(k->path, &keys, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not a regular file"));
}

static void test_keyfile_refuses_symlink_create(void **state)
{
    struct keydir *k = *state;
    struct flag_keys keys;
    char err[512] = "", target[320];
    /* A dangling link must not make us create a key wherever it points. */
    snprintf(target, sizeof(target), "%s/elsewhere", k->dir);
    assert_int_equal(symlink(target, k->path), 0);
    assert_int_equal(flag_keys_load(k->path, &keys, err, sizeof(err)), -1);
    assert_int_equal(access(target, F_OK), -1);
}

/* Processes start together on an absent file: exactly one creates it, and
 * all of them (loser of the race included) end with the same key. */
static void test_keyfile_concurrent_loads_agree(void **state)
{
    enum { PROCS = 8, ROUNDS = 10 };
    struct keydir *k = *state;
    for (int round = 0; round < ROUNDS; round++) {
        int go[2], res[2];
        pid_t pids[PROCS];
        assert_int_equal(pipe(go), 0);
        assert_int_equal(pipe(res), 0);
        for (int i = 0; i < PROCS; i++) {
            pids[i] = fork();
            assert_true(pids[i] >= 0);
            if (pids[i] == 0) {
                struct flag_keys keys;
                char c, err[512];
                close(go[1]);
                if (read(go[0], &c, 1) != 0) /* EOF when the parent says go */
                    _exit(2);
                memset(&keys, 0, sizeof(keys));
                int r = flag_keys_load(k->path, &keys, err, sizeof(err));
                if (r != 0)
                    fprintf(stderr, "# child: %s\n", err);
                ssize_t w = write(res[1], &keys, sizeof(keys));
                _exit(r == 0 && w == (ssize_t)sizeof(keys) ? 0 : 1);
            }
        }
        close(go[0]);
        close(go[1]);
        close(res[1]);
        struct flag_keys first, got;
        for (int i = 0; i < PROCS; i++) {
            assert_int_equal(read(res[0], &got, sizeof(got)), (ssize_t)sizeof(got));
            if (i == 0)
                first = got;
            assert_memory_equal(&got, &first, sizeof(got));
        }
        close(res[0]);
        for (int i = 0; i < PROCS; i++) {
            int status;
            assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
            assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        }
        assert_int_equal(unlink(k->path), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gcm_spec_case16),
        cmocka_unit_test(test_gcm_spec_case13_empty),
        cmocka_unit_test(test_hmac_rfc4231_case1),
        cmocka_unit_test(test_hmac_rfc4231_case2),
        cmocka_unit_test(test_hmac_rfc4231_case6),
        cmocka_unit_test(test_key_derivation_vectors),
        cmocka_unit_test(test_encrypt_roundtrip),
        cmocka_unit_test(test_encrypt_refuses_bad_sizes),
        cmocka_unit_test(test_decrypt_tampered_fails_and_wipes),
        cmocka_unit_test(test_decrypt_small_output_wipes),
        cmocka_unit_test(test_templates_good),
        cmocka_unit_test(test_templates_bad),
        cmocka_unit_test(test_template_length_limits),
        cmocka_unit_test(test_generate_shape),
        cmocka_unit_test(test_generate_distinct),
        cmocka_unit_test(test_generate_alphabets),
        cmocka_unit_test(test_generate_refuses),
        cmocka_unit_test_setup_teardown(test_keyfile_created_0600, keydir_setup, keydir_teardown),
        cmocka_unit_test_setup_teardown(test_keyfile_reads_given_key, keydir_setup,
                                        keydir_teardown),
        cmocka_unit_test_setup_teardown(test_keyfile_refuses_0644, keydir_setup, keydir_teardown),
        cmocka_unit_test_setup_teardown(test_keyfile_refuses_malformed, keydir_setup,
                                        keydir_teardown),
        cmocka_unit_test_setup_teardown(test_keyfile_refuses_directory, keydir_setup,
                                        keydir_teardown),
        cmocka_unit_test_setup_teardown(test_keyfile_refuses_symlink_create, keydir_setup,
                                        keydir_teardown),
        cmocka_unit_test_setup_teardown(test_keyfile_concurrent_loads_agree, keydir_setup,
                                        keydir_teardown),
    };
    return cmocka_run_group_tests_name("flag", tests, NULL, NULL);
}
