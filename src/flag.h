/* flag.h: flag templates, generation, AES-256-GCM at rest, HMAC-SHA256 index.
 *
 * A template is literal text with placeholders that draw random characters;
 * nothing in it is ever evaluated. Keys derive from one 32-byte master key in
 * the key file (shared with the CTFd plugin, which derives only the HMAC key).
 * This module does no logging: callers never log what it returns. */
#ifndef CC_FLAG_H
#define CC_FLAG_H

#include <stddef.h>
#include <stdint.h>

#define FLAG_MAX_LEN 255         /* a generated flag, without the NUL */
#define FLAG_TEMPLATE_MAX_LEN 255
#define FLAG_MIN_BITS 64         /* templates with less randomness are refused */
#define FLAG_NONCE_LEN 12
#define FLAG_TAG_LEN 16
#define FLAG_DIGEST_LEN 32
#define FLAG_KEY_ID_LEN 16       /* hex characters */
/* Ciphertext as stored: the encrypted flag followed by the 16-byte GCM tag. */
#define FLAG_CIPHERTEXT_MAX (FLAG_MAX_LEN + FLAG_TAG_LEN)

struct flag_keys {
    unsigned char enc[32];                /* AES-256-GCM key */
    unsigned char mac[32];                /* HMAC-SHA256 key for the lookup digest */
    char key_id[FLAG_KEY_ID_LEN + 1];     /* names the master key; stored with each flag */
};

/* Check a template. Returns 0 and sets *bits (random bits it carries), or -1
 * with a one-line reason in err (naming the position) for: a syntax error, an
 * unknown placeholder, a character outside printable ASCII, a result that
 * could exceed FLAG_MAX_LEN, or fewer than FLAG_MIN_BITS random bits. */
int flag_template_check(const char *tmpl, double *bits, char *err, size_t errlen);

/* Generate a flag from a checked template with the CSPRNG (RAND_bytes, with
 * rejection sampling: no modulo bias). Returns 0, or -1 if the template is bad
 * or the CSPRNG fails. out must hold FLAG_MAX_LEN + 1 bytes. */
int flag_generate(const char *tmpl, char *out, size_t outlen);

/* Load the master key from path, creating it (0600, 32 random bytes written
 * as 64 hex characters and a newline, O_EXCL so two processes never both
 * create it) when absent. Refuses a key file others may access or its group may
 * write (0600 or 0640: the CTFd plugin's user may read it through the group), or
 * not exactly 64 hex characters (a trailing newline allowed). Derives enc, mac
 * and key_id. Returns 0, or -1 with a reason (never the key) in err. */
int flag_keys_load(const char *path, struct flag_keys *keys, char *err, size_t errlen);

/* Derive keys from a master key given directly (tests, fuzzing). */
void flag_keys_derive(const unsigned char master[32], struct flag_keys *keys);

/* Encrypt flag with a fresh random nonce; aad binds the ciphertext to its row
 * (the instance id as decimal text). ct receives ciphertext||tag, *ctlen its
 * length. Returns 0 or -1. */
int flag_encrypt(const struct flag_keys *keys, const char *flag, const char *aad,
                 unsigned char nonce[FLAG_NONCE_LEN], unsigned char *ct, size_t ctcap,
                 size_t *ctlen);

/* Decrypt into out (NUL-terminated); on any failure out is wiped and -1 returned. */
int flag_decrypt(const struct flag_keys *keys, const unsigned char nonce[FLAG_NONCE_LEN],
                 const unsigned char *ct, size_t ctlen, const char *aad, char *out,
                 size_t outlen);

/* The lookup digest: HMAC-SHA256(mac key, flag). */
void flag_digest(const struct flag_keys *keys, const char *flag,
                 unsigned char out[FLAG_DIGEST_LEN]);

/* Overwrite secret memory in a way the compiler keeps (OPENSSL_cleanse). */
void flag_wipe(void *p, size_t n);

/* For tests: the primitives under the calls above, exposed so known-answer
 * vectors (RFC 4231, the GCM spec) can check them with fixed keys and nonces.
 * Production code calls the functions above instead. Each returns 0 or -1;
 * on failure the output is wiped (flag_gcm_open: pt, which OpenSSL writes
 * before it checks the tag). */
int flag_hmac_sha256(const unsigned char *key, size_t keylen, const unsigned char *msg,
                     size_t msglen, unsigned char out[32]);
int flag_gcm_seal(const unsigned char key[32], const unsigned char nonce[12],
                  const unsigned char *pt, size_t n, const unsigned char *aad, size_t aadlen,
                  unsigned char *ct, unsigned char tag[16]);
int flag_gcm_open(const unsigned char key[32], const unsigned char nonce[12],
                  const unsigned char *ct, size_t n, const unsigned char *aad, size_t aadlen,
                  const unsigned char tag[16], unsigned char *pt);

#endif
