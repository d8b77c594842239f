/* Opens a region of the tests' `ServiceConfig` type (format version 2: text, flags, an
 * optional value, a timestamp, an enum, a list) through the header that `shmstore header`
 * generated, prints every value through the typed accessors, then, with `set`, stores new
 * text under the lock and commits it.
 *
 * Usage: read_kinds NAME [set]
 */
#include "region.h" /* first: it sets up the POSIX 2008 declarations it needs */

#include <stdio.h>

static void print_text(const char *field, const char *text, uint32_t len) {
    if (text == NULL) {
        printf("%s=<invalid>\n", field);
    } else {
        printf("%s=%.*s (%u bytes)\n", field, (int)len, text, len);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s NAME [set]\n", argv[0]);
        return 2;
    }
    shmstore_region_t region;
    int rc = shmstore_open(argv[1], &region);
    if (rc != 0) {
        fprintf(stderr, "shmstore_open(%s): %s\n", argv[1], shmstore_strerror(rc));
        return 1;
    }
    if (argc == 3) {
        rc = shmstore_lock(&region);
        if (rc < 0) return 1;
        shmstore_begin_write(&region);
        shmstore_payload_t *value = shmstore_payload(&region);
        int too_long = shmstore_set_text_hostname(value, "x123456789x123456789x123456789x123456789"
                                                         "x123456789x123456789x", 61);
        int invalid = shmstore_set_text_hostname(value, "\xff", 1);
        int set = shmstore_set_text_hostname(value, "c-host", 6);
        value->log_level.raw = LogLevel_Debug;
        printf("set: too long %d, invalid %d, ok %d\n", too_long == -EMSGSIZE,
               invalid == -EILSEQ, set == 0);
        if (shmstore_unlock(&region) != 0) return 1;
    }
    shmstore_payload_t v;
    rc = shmstore_read(&region, &v);
    if (rc != 0) {
        fprintf(stderr, "shmstore_read: %s\n", shmstore_strerror(rc));
        return 1;
    }
    uint32_t len;
    const char *text = shmstore_text_service_name(&v, &len);
    print_text("service_name", text, len);
    text = shmstore_text_hostname(&v, &len);
    print_text("hostname", text, len);
    int64_t level = shmstore_enum_log_level(&v);
    printf("log_level=%lld%s\n", (long long)level,
           level == LogLevel_Info ? " (Info)" : level == LogLevel_Debug ? " (Debug)" : "");
    printf("tls=%s maintenance=%s\n", shmstore_flag_tls(&v) ? "true" : "false",
           shmstore_flag_maintenance(&v) ? "true" : "false");
    if (shmstore_present_request_limit(&v)) {
        printf("request_limit=%u\n", (unsigned)v.request_limit.value);
    } else {
        printf("request_limit=none\n");
    }
    printf("updated_at=%lld\n", (long long)shmstore_timestamp_updated_at(&v));
    shmstore_close(&region);
    return 0;
}
