/* ---- Field kinds (format version 2; FORMAT.md "Field kinds") --------- */

#include <stdbool.h>

/* Whether the n bytes at s are UTF-8 (no overlong forms, surrogates or code points above
 * U+10FFFF), as Rust's str requires. */
static inline bool shmstore_utf8_valid(const unsigned char *s, uint32_t n) {
    uint32_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        uint32_t need;
        uint32_t cp;
        if (c < 0x80) { i++; continue; }
        else if (c >= 0xc2 && c <= 0xdf) { need = 1; cp = c & 0x1fu; }
        else if (c >= 0xe0 && c <= 0xef) { need = 2; cp = c & 0x0fu; }
        else if (c >= 0xf0 && c <= 0xf4) { need = 3; cp = c & 0x07u; }
        else return false;
        if (n - i - 1 < need) return false;
        for (uint32_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3fu);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += need + 1;
    }
    return true;
}

/* Text (shmstore::value::FixedStr): its bytes (not NUL-terminated) with their number in *len,
 * or NULL (and *len 0) when the stored length is above the capacity or the bytes are not
 * UTF-8: a peer wrote it wrong. Call it on a copy (shmstore_read), whose length cannot
 * change under the check. The shmstore_text_FIELD accessors below call it. */
static inline const char *shmstore_text_get(const uint8_t len_bytes[4], const uint8_t *bytes,
                                            uint32_t capacity, uint32_t *len) {
    uint32_t n;
    memcpy(&n, len_bytes, sizeof n);
    *len = 0;
    if (n > capacity || !shmstore_utf8_valid(bytes, n)) return NULL;
    *len = n;
    return (const char *)bytes;
}

/* Stores the n bytes of text (UTF-8) and zeroes the unused tail, as FixedStr::set does: 0, or
 * -EMSGSIZE when it does not fit (nothing is written) and -EILSEQ when it is not UTF-8. Use it
 * between shmstore_begin_write and shmstore_commit. */
static inline int shmstore_text_set(uint8_t len_bytes[4], uint8_t *bytes, uint32_t capacity,
                                    const char *text, size_t n) {
    if (n > capacity) return -EMSGSIZE;
    if (!shmstore_utf8_valid((const unsigned char *)text, (uint32_t)n)) return -EILSEQ;
    uint32_t len = (uint32_t)n;
    memcpy(bytes, text, n);
    memset(bytes + n, 0, capacity - n);
    memcpy(len_bytes, &len, sizeof len);
    return 0;
}

